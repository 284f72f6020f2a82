//! Resources as Mesos's state endpoints show them: one JSON object, scalars as numbers summed
//! over roles, ranges and sets in their text form (`"ports": "[31000-32000]"`).

use serde_json::{Map, Value};

use crate::{Amount, Resources};

impl Resources {
    /// `{"cpus": 4.0, "mem": 8192.0, "ports": "[31000-32000]"}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (name, total) in self.scalar_totals() {
            out.insert(name, Value::from(total));
        }
        for (name, _, amount) in self.iter() {
            let text = match amount {
                Amount::Scalar(_) => continue,
                Amount::Ranges(r) => r.to_string(),
                Amount::Set(s) => {
                    format!("{{{}}}", s.iter().cloned().collect::<Vec<_>>().join(","))
                }
            };
            out.insert(name.to_owned(), Value::from(text));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_numbers_and_ranges_text() {
        let r: Resources = "cpus:2;mem:512;ports:[31000-31002]".parse().unwrap();
        assert_eq!(
            r.to_json(),
            serde_json::json!({"cpus": 2.0, "mem": 512.0, "ports": "[31000-31002]"})
        );
    }
}
