//! Manifests: what a machine type runs, as plain-text TOML an operator reads and diffs.
//!
//! ```toml
//! name = "web"
//! version = "2"
//! machine_type = "default"
//!
//! [[files]]
//! path = "bin/server.sh"
//! source = "server.sh"          # for `keelctl deploy`: read relative to the manifest file
//! sha256 = "…"                  # optional with a source; checked when given
//! executable = true
//!
//! [[processes]]
//! name = "server"
//! argv = ["sh", "bin/server.sh"]
//! env = { PORT = "8080" }
//! ```
//!
//! On a machine a manifest lives in `{work_dir}/manifests/{name}/{version}/`, its files at
//! their paths below it; processes start there.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use protos::autopilot::{Manifest, ManifestFile, ManifestProcess};
use serde::Deserialize;

/// Most files in one manifest.
pub const MAX_FILES: usize = 1000;
/// Most processes in one manifest.
pub const MAX_PROCESSES: usize = 32;
/// Largest manifest text.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Longest name, version, path or argument.
const MAX_FIELD: usize = 512;

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML of the expected shape.
    #[error("manifest is not valid TOML: {0}")]
    Syntax(String),
    /// A field breaks a rule.
    #[error("manifest {field}: {why}")]
    Invalid {
        /// Which field.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// A file's source could not be read.
    #[error("cannot read {path}: {why}")]
    Source {
        /// The source path.
        path: String,
        /// What the OS said.
        why: String,
    },
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestText {
    name: String,
    version: String,
    #[serde(default = "default_type")]
    machine_type: String,
    #[serde(default)]
    files: Vec<FileText>,
    #[serde(default)]
    processes: Vec<ProcessText>,
}

fn default_type() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    path: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    executable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessText {
    name: String,
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// A manifest parsed from TOML, with the local sources of its files (for upload).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The manifest (file sizes and digests filled from the sources when read).
    pub manifest: Manifest,
    /// Per file (same order), its source path as written, if any.
    pub sources: Vec<Option<String>>,
}

/// Parses manifest TOML and checks its rules (files without a source need a sha256).
pub fn parse(text: &str) -> Result<ParsedManifest, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(invalid(
            "text",
            format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let raw: ManifestText =
        toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
    let mut sources = Vec::new();
    let manifest = Manifest {
        name: raw.name,
        version: raw.version,
        machine_type: raw.machine_type,
        files: raw
            .files
            .into_iter()
            .map(|f| {
                sources.push(f.source);
                ManifestFile {
                    path: f.path,
                    sha256: f.sha256.unwrap_or_default().to_ascii_lowercase(),
                    size: 0,
                    executable: f.executable,
                }
            })
            .collect(),
        processes: raw
            .processes
            .into_iter()
            .map(|p| ManifestProcess {
                name: p.name,
                argv: p.argv,
                env: p.env.into_iter().collect(),
            })
            .collect(),
    };
    for (f, source) in manifest.files.iter().zip(&sources) {
        if f.sha256.is_empty() && source.is_none() {
            return Err(invalid(
                format!("files[{}]", f.path),
                "needs a sha256 or a source",
            ));
        }
    }
    validate(&manifest, false)?;
    Ok(ParsedManifest { manifest, sources })
}

/// Reads each file's source (relative to `base`), filling in its size and sha256 (a sha256
/// written in the manifest must match); returns the contents, in file order.
pub fn read_sources(
    parsed: &mut ParsedManifest,
    base: &Path,
) -> Result<Vec<Vec<u8>>, ManifestError> {
    let mut contents = Vec::new();
    for (file, source) in parsed.manifest.files.iter_mut().zip(&parsed.sources) {
        let Some(source) = source else {
            contents.push(Vec::new());
            continue;
        };
        let path = base.join(source);
        let data = std::fs::read(&path).map_err(|e| ManifestError::Source {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let digest = sha256_hex(&data);
        if !file.sha256.is_empty() && file.sha256 != digest {
            return Err(invalid(
                format!("files[{}].sha256", file.path),
                format!("{source} hashes to {digest}"),
            ));
        }
        file.sha256 = digest;
        file.size = data.len() as u64;
        contents.push(data);
    }
    validate(&parsed.manifest, true)?;
    Ok(contents)
}

/// Checks a manifest's rules; with `complete`, every file must have its sha256.
pub fn validate(m: &Manifest, complete: bool) -> Result<(), ManifestError> {
    for (field, value) in [
        ("name", &m.name),
        ("version", &m.version),
        ("machine_type", &m.machine_type),
    ] {
        if value.is_empty() || value.len() > 128 {
            return Err(invalid(field, "must be 1 to 128 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || value.starts_with('.')
        {
            return Err(invalid(
                field,
                "letters, digits, '-', '_' and '.' only, not first '.'",
            ));
        }
    }
    if m.files.len() > MAX_FILES {
        return Err(invalid("files", format!("more than {MAX_FILES}")));
    }
    if m.processes.len() > MAX_PROCESSES {
        return Err(invalid("processes", format!("more than {MAX_PROCESSES}")));
    }
    let mut paths = std::collections::BTreeSet::new();
    for f in &m.files {
        relative_path(&f.path).ok_or_else(|| {
            invalid(
                format!("files[{}]", f.path),
                "path must be relative, without '..'",
            )
        })?;
        if !paths.insert(f.path.as_str()) {
            return Err(invalid(format!("files[{}]", f.path), "listed twice"));
        }
        let hex_ok = f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if (complete || !f.sha256.is_empty()) && !hex_ok {
            return Err(invalid(
                format!("files[{}].sha256", f.path),
                "64 hex digits",
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for p in &m.processes {
        if p.name.is_empty() || p.name.len() > 64 || !names.insert(p.name.as_str()) {
            return Err(invalid(
                "processes",
                format!("name {:?} empty, too long or repeated", p.name),
            ));
        }
        if p.argv.is_empty() || p.argv.iter().any(|a| a.len() > MAX_FIELD) {
            return Err(invalid(
                format!("processes[{}].argv", p.name),
                "needs a program",
            ));
        }
    }
    Ok(())
}

/// The manifest as JSON (the device manager's routes, `keelctl deploy`).
pub fn to_json(m: &Manifest) -> serde_json::Value {
    serde_json::json!({
        "name": m.name,
        "version": m.version,
        "machine_type": m.machine_type,
        "files": m.files.iter().map(|f| serde_json::json!({
            "path": f.path, "sha256": f.sha256, "size": f.size, "executable": f.executable,
        })).collect::<Vec<_>>(),
        "processes": m.processes.iter().map(|p| serde_json::json!({
            "name": p.name, "argv": p.argv, "env": p.env,
        })).collect::<Vec<_>>(),
    })
}

/// A manifest from [`to_json`]'s shape, checked (every file with its sha256).
pub fn from_json(v: &serde_json::Value) -> Result<Manifest, ManifestError> {
    let text = |v: &serde_json::Value, field: &str| -> Result<String, ManifestError> {
        v[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(field, "missing or not a string"))
    };
    let list = |field: &str| v[field].as_array().map_or(&[][..], Vec::as_slice);
    let mut files = Vec::new();
    for f in list("files") {
        files.push(ManifestFile {
            path: text(f, "path")?,
            sha256: text(f, "sha256")?.to_ascii_lowercase(),
            size: f["size"].as_u64().unwrap_or(0),
            executable: f["executable"].as_bool().unwrap_or(false),
        });
    }
    let mut processes = Vec::new();
    for p in list("processes") {
        let argv = p["argv"]
            .as_array()
            .ok_or_else(|| invalid("processes.argv", "missing"))?
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("processes.argv", "strings only"))?;
        let env = p["env"]
            .as_object()
            .map(|e| {
                e.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        processes.push(ManifestProcess {
            name: text(p, "name")?,
            argv,
            env,
        });
    }
    let m = Manifest {
        name: text(v, "name")?,
        version: text(v, "version")?,
        machine_type: text(v, "machine_type")?,
        files,
        processes,
    };
    validate(&m, true)?;
    Ok(m)
}

/// `path` as a relative path without `..`, or `None`.
pub fn relative_path(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.len() > MAX_FIELD {
        return None;
    }
    let p = PathBuf::from(path);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(p)
}

/// Where `manifest` lives under an agent's work dir.
pub fn install_dir(work_dir: &Path, manifest: &Manifest) -> PathBuf {
    work_dir
        .join("manifests")
        .join(&manifest.name)
        .join(&manifest.version)
}

/// Lower-case hex sha256 of `data`.
pub use authentication::digest::sha256_hex;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "web"
version = "2"

[[files]]
path = "bin/server.sh"
source = "server.sh"
executable = true

[[processes]]
name = "server"
argv = ["sh", "bin/server.sh"]
env = { PORT = "8080" }
"#;

    #[test]
    fn parses_reads_sources_and_fills_digests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.sh"), "sleep 100\n").unwrap();
        let mut parsed = parse(GOOD).unwrap();
        assert_eq!(parsed.manifest.machine_type, "default");
        assert_eq!(parsed.manifest.processes[0].env["PORT"], "8080");
        let contents = read_sources(&mut parsed, dir.path()).unwrap();
        assert_eq!(contents[0], b"sleep 100\n");
        assert_eq!(parsed.manifest.files[0].sha256, sha256_hex(b"sleep 100\n"));
        assert_eq!(parsed.manifest.files[0].size, 10);
    }

    #[test]
    fn bad_manifests_are_refused_with_the_field_at_fault() {
        let cases = [
            ("name = \"web\"", "Syntax"),
            ("name = \"w b\"\nversion = \"1\"", "name"),
            ("name = \"web\"\nversion = \"1\"\n[[files]]\npath = \"../etc/passwd\"\nsha256 = \"00\"", "path"),
            ("name = \"web\"\nversion = \"1\"\n[[files]]\npath = \"a\"", "sha256 or a source"),
            ("name = \"web\"\nversion = \"1\"\n[[processes]]\nname = \"p\"\nargv = []", "argv"),
            ("name = \"web\"\nversion = \"1\"\nsurprise = 1", "Syntax"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            let shown = format!("{err:?} {err}");
            assert!(shown.contains(expected), "{text:?}: {shown}");
        }
    }
}
