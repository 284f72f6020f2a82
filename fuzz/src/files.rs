//! Targets for text an operator hands Keel: `--resources` and `--attributes` flags, Autopilot
//! manifests, ACL files and credentials files.

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `--resources`: what parses prints back as text that parses to the same resources.
pub(crate) fn resources(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(parsed) = text.parse::<resources::Resources>() {
        let printed = parsed.to_string();
        let again = printed
            .parse::<resources::Resources>()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again, parsed, "{text:?} printed as {printed:?}");
    }
}

/// `--attributes`.
pub(crate) fn attributes(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = slave::agent_resources::parse_attributes(text);
    }
}

/// Autopilot manifests (TOML).
pub(crate) fn manifest(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = autopilot::manifest::parse(text);
    }
}

/// ACL files (Mesos's JSON).
pub(crate) fn acls(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = authentication::acls::Acls::parse(text);
    }
}

/// Credentials files.
pub(crate) fn credentials(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = authentication::Credentials::parse(text);
    }
}
