//! The text form of resources used by `--resources` and in logs:
//! `cpus:4;mem:8192;ports:[31000-32000];zones:{a,b}`, with `name(role):…` for reserved ones.

use crate::{Amount, RangeSet, ResourceError, Resources, UNRESERVED_ROLE};

/// Parses the text form. Entries are separated by `;`; a value in `[..]` is ranges, in `{..}`
/// a set, otherwise a scalar.
pub fn parse(text: &str) -> Result<Resources, ResourceError> {
    let err = |why: String| ResourceError::Parse {
        text: text.to_owned(),
        why,
    };
    let mut out = Resources::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once(':')
            .ok_or_else(|| err(format!("{entry:?} has no ':' between name and value")))?;
        let (name, role) = match key.split_once('(') {
            Some((name, rest)) => {
                let role = rest
                    .strip_suffix(')')
                    .ok_or_else(|| err(format!("{key:?}: role must be written name(role)")))?;
                (name.trim(), role.trim())
            }
            None => (key.trim(), UNRESERVED_ROLE),
        };
        if name.is_empty() || role.is_empty() {
            return Err(err(format!("{entry:?} has an empty name or role")));
        }
        let value = value.trim();
        let amount = if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']'))
        {
            let mut set = RangeSet::new();
            for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (b, e) = part
                    .split_once('-')
                    .ok_or_else(|| err(format!("range {part:?} must be begin-end")))?;
                let begin: u64 = b
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("bad range start {b:?}")))?;
                let end: u64 = e
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("bad range end {e:?}")))?;
                if end < begin {
                    return Err(err(format!("range {part:?} ends before it begins")));
                }
                set.insert(begin, end);
            }
            Amount::Ranges(set)
        } else if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            Amount::Set(
                inner
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        } else {
            let fixed = match crate::decimal_to_fixed(value) {
                Some(fixed) => fixed,
                None => {
                    let v: f64 = value.parse().map_err(|_| {
                        err(format!(
                            "{name}: {value:?} is not a number, [ranges] or {{set}}"
                        ))
                    })?;
                    crate::to_fixed(name, v)?
                }
            };
            Amount::Scalar(fixed)
        };
        out.add_amount(name.into(), role.into(), amount)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_print_exactly_and_read_back_the_same_however_large() {
        // Found by fuzzing: printed through f64, this amount read back 192 thousandths off.
        let r = parse("x:6666666666666669.888;y:0.1;z:1.2345;w:2;v:1e3").unwrap();
        assert_eq!(
            r.to_string(),
            "v:1000;w:2;x:6666666666666669.888;y:0.1;z:1.235"
        );
        assert_eq!(parse(&r.to_string()).unwrap(), r);
        assert!(
            parse("x:9300000000000000").is_err(),
            "past the largest amount"
        );
        // Found by fuzzing: two amounts of one name that add up past it overflowed.
        assert!(matches!(
            parse("x:9000000000000000;x:9000000000000000"),
            Err(crate::ResourceError::TooLarge(_))
        ));
    }

    #[test]
    fn parses_the_agent_flag_format() {
        let r = parse("cpus:4; mem:8192 ;ports:[31000-32000];gpus(ml):1").unwrap();
        assert_eq!(r.scalar("cpus"), 4.0);
        assert_eq!(r.scalar("mem"), 8192.0);
        assert_eq!(r.scalar("gpus"), 1.0);
        assert_eq!(
            r.to_string(),
            "cpus:4;gpus(ml):1;mem:8192;ports:[31000-32000]"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (text, needle) in [
            ("cpus", "no ':'"),
            ("cpus:four", "not a number"),
            ("cpus:-1", "finite non-negative"),
            ("ports:[5-1]", "ends before"),
            ("ports:[a-b]", "bad range start"),
            ("cpus(:1", "name(role)"),
            (":1", "empty name"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(matches!(
            parse("x:1;x:[1-2]"),
            Err(ResourceError::TypeClash(_))
        ));
    }
}
