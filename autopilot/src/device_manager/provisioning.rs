//! Provisioning (Autopilot, Isard 2007): a machine the device manager hears of for the first time is given
//! its machine type by plain-text rules (patterns on its hostname or on one of its agent's
//! attributes, first match wins; otherwise the type its agent declares), is sent its type's active manifest, and with burn-in stays in
//! Probation for the probation period (drained: not offered to frameworks) before it is
//! Healthy.

use std::collections::HashMap;

use libactor::{Context, Upid};
use protos::autopilot::{HealthState, MachineEvent, MachineRecord};

use super::DeviceManager;
use crate::ground_truth;

/// Machines whose hostname, or whose agent's attribute `attribute`, matches `pattern` (`*`
/// matches any run of characters) are of `machine_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRule {
    /// The attribute the pattern applies to (none: the hostname).
    pub attribute: Option<String>,
    /// The pattern.
    pub pattern: String,
    /// The type it gives.
    pub machine_type: String,
}

impl TypeRule {
    /// Whether the machine `hostname` with its agent's `attributes` matches.
    pub fn matches(&self, hostname: &str, attributes: &HashMap<String, String>) -> bool {
        match &self.attribute {
            None => glob(&self.pattern, hostname),
            Some(name) => attributes.get(name).is_some_and(|v| glob(&self.pattern, v)),
        }
    }
}

impl std::fmt::Display for TypeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.attribute {
            None => write!(f, "{}={}", self.pattern, self.machine_type),
            Some(a) => write!(f, "{a}:{}={}", self.pattern, self.machine_type),
        }
    }
}

impl std::str::FromStr for TypeRule {
    type Err = String;

    /// `PATTERN=TYPE` for hostnames (`web-*=web`), `ATTRIBUTE:PATTERN=TYPE` for an attribute
    /// of the agent (`rack:r1-*=storage`; hostnames hold no `:`).
    fn from_str(s: &str) -> Result<TypeRule, String> {
        let (subject, machine_type) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected [ATTRIBUTE:]PATTERN=TYPE"))?;
        let (attribute, pattern) = match subject.split_once(':') {
            Some((a, p)) if !a.trim().is_empty() => (Some(a.trim().to_owned()), p.trim()),
            Some(_) => return Err(format!("{s:?}: the attribute's name is empty")),
            None => (None, subject.trim()),
        };
        let machine_type = machine_type.trim();
        if pattern.is_empty() || machine_type.is_empty() {
            return Err(format!("{s:?}: pattern and type must not be empty"));
        }
        Ok(TypeRule {
            attribute,
            pattern: pattern.to_owned(),
            machine_type: machine_type.to_owned(),
        })
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl DeviceManager {
    /// Adds machine `id`, first heard of from `from` with its agent's `attributes`, typed by
    /// the rules.
    pub(super) fn provision(
        &mut self,
        ctx: &mut Context<Self>,
        id: &str,
        declared: &str,
        attributes: &HashMap<String, String>,
        from: &Upid,
    ) {
        let now = self.now(ctx);
        let rule = self
            .config
            .type_rules
            .iter()
            .find(|r| r.matches(id, attributes));
        let (machine_type, how) = match rule {
            Some(r) => (r.machine_type.clone(), format!("by rule {r}")),
            None if declared.is_empty() => ("default".to_owned(), "by default".to_owned()),
            None => (declared.to_owned(), "declared by its agent".to_owned()),
        };
        let burn_in = self.config.burn_in;
        let state = if burn_in {
            HealthState::Probation
        } else {
            HealthState::Healthy
        };
        let mut record = MachineRecord {
            id: id.to_owned(),
            hostname: id.to_owned(),
            machine_type: machine_type.clone(),
            state: state as i32,
            since: now,
            agent_address: from.address().to_owned(),
            ..Default::default()
        };
        if burn_in {
            record.history.push(MachineEvent {
                at: now,
                state: state as i32,
                action: 0,
                detail: "burn-in".into(),
            });
        }
        self.machines.insert(id.to_owned(), record);
        self.dirty.insert(ground_truth::shard_of(id));
        self.record(
            ctx,
            "provisioning",
            format!(
                "machine {id} added (type {machine_type}, {})",
                super::state_name(state)
            ),
            format!("first watchdog report, from {from}; type {how}"),
        );
        self.persist(ctx);
        if burn_in {
            if let Some(gate) = &self.gate {
                ctx.defer(
                    gate.drain(id, false, "burn-in"),
                    |_: &mut DeviceManager, _, _| {},
                );
            }
        }
        let active = self
            .deployment
            .active
            .iter()
            .find(|m| m.machine_type == machine_type)
            .cloned();
        if let Some(manifest) = active {
            self.sync_machine(ctx, id, Some(&manifest), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_runs_of_characters() {
        assert!(glob("web-*", "web-12"));
        assert!(glob("*-db-*", "rack1-db-3"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(!glob("web-*", "db-1"));
        assert!(glob("*", ""));
        assert_eq!(
            "web-*=web".parse::<TypeRule>().unwrap(),
            TypeRule {
                attribute: None,
                pattern: "web-*".into(),
                machine_type: "web".into()
            }
        );
        assert!("nope".parse::<TypeRule>().is_err());
        assert!(":r1=storage".parse::<TypeRule>().is_err());
    }

    #[test]
    fn rules_match_a_hostname_or_an_attribute() {
        let rack: TypeRule = "rack:r1-*=storage".parse().unwrap();
        assert_eq!(rack.attribute.as_deref(), Some("rack"));
        assert_eq!(rack.to_string(), "rack:r1-*=storage");
        let attributes = HashMap::from([("rack".to_owned(), "r1-07".to_owned())]);
        assert!(rack.matches("host-9", &attributes));
        assert!(!rack.matches("r1-07", &HashMap::new()), "not the hostname");
        let other = HashMap::from([("rack".to_owned(), "r2-01".to_owned())]);
        assert!(!rack.matches("host-9", &other));
        let web: TypeRule = "web-*=web".parse().unwrap();
        assert!(web.matches("web-3", &attributes));
        assert!(!web.matches("db-3", &attributes));
    }
}
