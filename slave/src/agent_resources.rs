//! What an agent offers: resources detected from the machine, overridden entry by entry by
//! `--resources "cpus:4;mem:8192;ports:[31000-32000]"`, and attributes from
//! `--attributes "rack:r1;zone:z2"`.
//!
//! Detection leaves room for the system as Mesos does: memory is the total less 1 GiB (half on
//! machines under 2 GiB), disk the work dir's filesystem less 5 GiB (half under 10 GiB).

use std::collections::BTreeSet;
use std::path::Path;

use protos::v1::value::{Scalar, Text, Type};
use protos::v1::Attribute;
use resources::{ResourceError, Resources};

/// Ports offered when neither detection nor the flag says otherwise.
pub const DEFAULT_PORTS: &str = "ports:[31000-32000]";

const MIB: u64 = 1024 * 1024;

/// Why an agent's resources or attributes could not be worked out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentResourcesError {
    /// `--resources` is malformed.
    #[error("--resources: {0}")]
    Resources(#[from] ResourceError),
    /// `--attributes` is malformed.
    #[error("--attributes: entry {0:?} must be name:value")]
    Attribute(String),
}

/// The machine's resources, less what the system keeps for itself.
pub fn detect(work_dir: &Path) -> Resources {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut text = format!("cpus:{cpus}");
    if let Some(total) = meminfo_total_bytes() {
        let keep = if total >= 2 * 1024 * MIB {
            total - 1024 * MIB
        } else {
            total / 2
        };
        text.push_str(&format!(";mem:{}", keep / MIB));
    }
    if let Some(total) = filesystem_bytes(work_dir) {
        let keep = if total >= 10 * 1024 * MIB {
            total - 5 * 1024 * MIB
        } else {
            total / 2
        };
        text.push_str(&format!(";disk:{}", keep / MIB));
    }
    text.push(';');
    text.push_str(DEFAULT_PORTS);
    text.parse().unwrap_or_default()
}

/// The agent's resources: `flag`'s entries, plus detected ones for names the flag leaves out.
pub fn agent_resources(
    flag: Option<&str>,
    work_dir: &Path,
) -> Result<Resources, AgentResourcesError> {
    let detected = detect(work_dir);
    let Some(flag) = flag else {
        return Ok(detected);
    };
    let given: Resources = flag.parse()?;
    let named: BTreeSet<&str> = given.iter().map(|(name, _, _)| name).collect();
    let kept: Vec<_> = detected
        .to_proto()
        .into_iter()
        .filter(|r| !named.contains(r.name.as_str()))
        .collect();
    let mut out = Resources::from_proto(&kept)?;
    out.add(&given)?;
    Ok(out)
}

/// Parses `--attributes`: `name:value` entries separated by `;`. Values are typed as in Mesos:
/// a number is a scalar, `[a-b]` ranges, `{x,y}` a set, anything else text.
pub fn parse_attributes(text: &str) -> Result<Vec<Attribute>, AgentResourcesError> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry
            .split_once(':')
            .filter(|(n, v)| !n.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| AgentResourcesError::Attribute(entry.to_owned()))?;
        let (name, value) = (name.trim(), value.trim());
        let mut attribute = Attribute {
            name: name.to_owned(),
            ..Default::default()
        };
        if let Ok(v) = value.parse::<f64>() {
            attribute.r#type = Type::Scalar as i32;
            attribute.scalar = Some(Scalar { value: v });
        } else if value.starts_with('[') || value.starts_with('{') {
            let parsed: Resources = format!("{name}:{value}")
                .parse()
                .map_err(|_| AgentResourcesError::Attribute(entry.to_owned()))?;
            let Some(r) = parsed.to_proto().into_iter().next() else {
                return Err(AgentResourcesError::Attribute(entry.to_owned()));
            };
            attribute.r#type = r.r#type;
            attribute.ranges = r.ranges;
            attribute.set = r.set;
        } else {
            attribute.r#type = Type::Text as i32;
            attribute.text = Some(Text {
                value: value.to_owned(),
            });
        }
        out.push(attribute);
    }
    Ok(out)
}

fn meminfo_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn filesystem_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs(3) with a valid path and a zeroed out-parameter of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_blocks as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_finds_this_machine() {
        let r = detect(Path::new("/tmp"));
        assert!(r.scalar("cpus") >= 1.0);
        assert!(r.scalar("mem") > 0.0, "{r}");
        assert!(r.scalar("disk") > 0.0, "{r}");
        assert!(r.contains(&"ports:[31000-32000]".parse().unwrap()));
    }

    #[test]
    fn the_flag_overrides_by_name_and_keeps_the_rest() {
        let r = agent_resources(Some("cpus:4;mem:8192;gpus:1"), Path::new("/tmp")).unwrap();
        assert_eq!(r.scalar("cpus"), 4.0);
        assert_eq!(r.scalar("mem"), 8192.0);
        assert_eq!(r.scalar("gpus"), 1.0);
        assert!(r.scalar("disk") > 0.0, "detected disk kept");
        assert!(matches!(
            agent_resources(Some("cpus:lots"), Path::new("/tmp")),
            Err(AgentResourcesError::Resources(_))
        ));
    }

    #[test]
    fn attributes_are_typed() {
        let a = parse_attributes("rack:r1; cores:16; slots:[1-4]; zones:{a,b}").unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].text.as_ref().unwrap().value, "r1");
        assert_eq!(a[1].scalar.as_ref().unwrap().value, 16.0);
        assert_eq!(a[2].ranges.as_ref().unwrap().range.len(), 1);
        assert_eq!(a[3].set.as_ref().unwrap().item, vec!["a", "b"]);
        assert!(parse_attributes("rack").is_err());
        assert!(parse_attributes("rack:").is_err());
        assert!(parse_attributes("slots:[4-1]").is_err());
    }
}
