//! Mesos's access control lists (`--acls FILE`, JSON): which principal may do what to which
//! object. Each action holds rules in order; the first rule whose subject and object both
//! *match* decides, by whether both *allow*; with no matching rule, `permissive` decides.
//! An entity is `{"values": [...]}`, `{"type": "ANY"}` or `{"type": "NONE"}`: `ANY` and `NONE`
//! match everything, and `NONE` allows nothing (so a rule with a `NONE` object denies).
//! A request without a principal matches only `ANY` and `NONE` subjects.
//!
//! ```
//! use authentication::acls::{Acls, Action};
//!
//! let acls = Acls::parse(r#"{
//!   "permissive": false,
//!   "register_frameworks": [
//!     {"principals": {"values": ["analytics"]}, "roles": {"values": ["batch"]}},
//!     {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
//!   ]
//! }"#).unwrap();
//! assert!(acls.permits(Action::RegisterFramework, Some("analytics"), "batch"));
//! assert!(!acls.permits(Action::RegisterFramework, Some("analytics"), "prod"));
//! assert!(!acls.permits(Action::RegisterFramework, Some("other"), "batch"));
//! assert!(!acls.permits(Action::RunTask, Some("analytics"), "root"), "not permissive");
//! ```

use serde::Deserialize;

/// What a request asks to do; the object each action names is given beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Register a framework in a role (object: the role).
    RegisterFramework,
    /// Run a task as an OS user (object: the user).
    RunTask,
    /// Tear a framework down (object: the framework's principal).
    TeardownFramework,
    /// See a framework (object: its user).
    ViewFramework,
    /// See a task (object: the user it runs as).
    ViewTask,
    /// Read a framework's sandboxes (object: its user).
    AccessSandbox,
    /// Call an HTTP endpoint (object: its path).
    GetEndpoint,
    /// Mark an agent gone (object: implicit, as in Mesos; rules use `"agents": {"type": "ANY"}`).
    MarkAgentGone,
}

/// One entity of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entity {
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default, rename = "type")]
    kind: Option<EntityType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum EntityType {
    #[serde(rename = "ANY")]
    Any,
    #[serde(rename = "NONE")]
    None,
}

impl Entity {
    fn matches(&self, value: Option<&str>) -> bool {
        match (self.kind, &self.values) {
            (Some(_), _) => true,
            (None, Some(values)) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            (None, None) => false,
        }
    }

    fn allows(&self, value: Option<&str>) -> bool {
        match (self.kind, &self.values) {
            (Some(EntityType::Any), _) => true,
            (Some(EntityType::None), _) => false,
            (None, Some(values)) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            (None, None) => false,
        }
    }
}

/// A rule: a subject (principals) and an object, under the object's Mesos name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Rule {
    principals: Entity,
    #[serde(
        alias = "roles",
        alias = "users",
        alias = "framework_principals",
        alias = "paths",
        alias = "agents"
    )]
    object: Entity,
}

/// The access control lists of a master or agent. The default has no rules and is
/// permissive: everything is allowed, as without `--acls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acls {
    /// What a request no rule matches gets (Mesos's default: true).
    #[serde(default = "permissive_default")]
    pub permissive: bool,
    #[serde(default)]
    register_frameworks: Vec<Rule>,
    #[serde(default)]
    run_tasks: Vec<Rule>,
    #[serde(default)]
    teardown_frameworks: Vec<Rule>,
    #[serde(default)]
    view_frameworks: Vec<Rule>,
    #[serde(default)]
    view_tasks: Vec<Rule>,
    #[serde(default)]
    access_sandboxes: Vec<Rule>,
    #[serde(default)]
    get_endpoints: Vec<Rule>,
    #[serde(default)]
    mark_agents_gone: Vec<Rule>,
}

fn permissive_default() -> bool {
    true
}

impl Default for Acls {
    fn default() -> Self {
        Acls {
            permissive: true,
            register_frameworks: Vec::new(),
            run_tasks: Vec::new(),
            teardown_frameworks: Vec::new(),
            view_frameworks: Vec::new(),
            view_tasks: Vec::new(),
            access_sandboxes: Vec::new(),
            get_endpoints: Vec::new(),
            mark_agents_gone: Vec::new(),
        }
    }
}

/// Why an ACL file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AclsError {
    /// The file could not be read.
    #[error("cannot read ACLs file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The JSON is malformed or has unknown fields.
    #[error("ACLs: {0}")]
    Parse(String),
}

impl Acls {
    /// Parses Mesos's ACL JSON.
    pub fn parse(json: &str) -> Result<Acls, AclsError> {
        serde_json::from_str(json).map_err(|e| AclsError::Parse(e.to_string()))
    }

    /// Reads and parses an ACL file.
    pub fn from_file(path: &std::path::Path) -> Result<Acls, AclsError> {
        let text = std::fs::read_to_string(path).map_err(|error| AclsError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Acls::parse(&text)
    }

    /// Whether `principal` (`None`: unauthenticated) may do `action` to `object`.
    pub fn permits(&self, action: Action, principal: Option<&str>, object: &str) -> bool {
        let rules = match action {
            Action::RegisterFramework => &self.register_frameworks,
            Action::RunTask => &self.run_tasks,
            Action::TeardownFramework => &self.teardown_frameworks,
            Action::ViewFramework => &self.view_frameworks,
            Action::ViewTask => &self.view_tasks,
            Action::AccessSandbox => &self.access_sandboxes,
            Action::GetEndpoint => &self.get_endpoints,
            Action::MarkAgentGone => &self.mark_agents_gone,
        };
        rules
            .iter()
            .find(|r| r.principals.matches(principal) && r.object.matches(Some(object)))
            .map_or(self.permissive, |r| {
                r.principals.allows(principal) && r.object.allows(Some(object))
            })
    }

    /// Whether `principal` may call the endpoint at `path`. As in Mesos, `get_endpoints`
    /// governs only the endpoints that expose the node's internals ([`governs_endpoint`]);
    /// the others have their own actions (`view_frameworks`, `access_sandboxes`, …).
    pub fn permits_endpoint(&self, principal: Option<&str>, path: &str) -> bool {
        !governs_endpoint(path) || self.permits(Action::GetEndpoint, principal, path)
    }
}

/// The endpoints `get_endpoints` rules apply to: metrics, the process list, and an agent's
/// resource statistics (Mesos's `/metrics/snapshot`, `/monitor/statistics`, …).
pub fn governs_endpoint(path: &str) -> bool {
    matches!(path, "/metrics/snapshot" | "/metrics" | "/__processes__")
        || path.ends_with("/monitor/statistics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_decides_and_none_denies() {
        let acls = Acls::parse(
            r#"{"run_tasks": [
                {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                {"principals": {"type": "ANY"}, "users": {"values": ["root"]}},
                {"principals": {"type": "NONE"}, "users": {"values": ["nobody"]}}
            ]}"#,
        )
        .unwrap();
        assert!(acls.permissive, "Mesos's default");
        assert!(acls.permits(Action::RunTask, Some("ops"), "root"));
        assert!(
            acls.permits(Action::RunTask, Some("dev"), "root"),
            "ANY subject, root object"
        );
        assert!(
            !acls.permits(Action::RunTask, Some("dev"), "nobody"),
            "NONE subject denies"
        );
        assert!(
            acls.permits(Action::RunTask, Some("dev"), "alice"),
            "no rule: permissive"
        );
        assert!(
            acls.permits(Action::RunTask, None, "root"),
            "ANY matches the unauthenticated"
        );
    }

    #[test]
    fn get_endpoints_governs_only_the_internals() {
        let acls = Acls::parse(
            r#"{"permissive": false, "get_endpoints": [
                {"principals": {"values": ["ops"]}, "paths": {"values": ["/metrics/snapshot"]}}
            ]}"#,
        )
        .unwrap();
        assert!(acls.permits_endpoint(Some("ops"), "/metrics/snapshot"));
        assert!(!acls.permits_endpoint(Some("dev"), "/metrics/snapshot"));
        assert!(!acls.permits_endpoint(None, "/slave(1)/monitor/statistics"));
        assert!(
            acls.permits_endpoint(Some("dev"), "/master/state"),
            "state has view_frameworks"
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(Acls::parse(r#"{"permisive": false}"#).is_err());
        assert!(Acls::parse(
            r#"{"run_tasks": [{"principals": {"typ": "ANY"}, "users": {"type": "ANY"}}]}"#
        )
        .is_err());
    }

    #[test]
    fn marking_agents_gone_has_rules_of_its_own() {
        let acls = Acls::parse(
            r#"{"mark_agents_gone": [
                {"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}},
                {"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}
            ]}"#,
        )
        .unwrap();
        assert!(acls.permits(Action::MarkAgentGone, Some("ops"), ""));
        assert!(!acls.permits(Action::MarkAgentGone, Some("dev"), ""));
        assert!(
            acls.permits(Action::TeardownFramework, Some("dev"), "x"),
            "other actions keep their own rules"
        );
    }
}
