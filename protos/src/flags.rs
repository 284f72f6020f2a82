//! Daemon flags as `GET_FLAGS` answers list them.

use crate::v1::Flag;

impl Flag {
    /// `keel.v1.Flag`s from (name, value) pairs, in their order: what a master's and an
    /// agent's `GET_FLAGS` answer with.
    pub fn list(pairs: &[(String, String)]) -> Vec<Flag> {
        pairs
            .iter()
            .map(|(name, value)| Flag {
                name: name.clone(),
                value: Some(value.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_flags_in_order() {
        let flags = Flag::list(&[("port".into(), "5050".into()), ("ip".into(), "::".into())]);
        assert_eq!(flags[0].name, "port");
        assert_eq!(flags[1].value.as_deref(), Some("::"));
    }
}
