//! The `files` process: sandbox files over HTTP for operators and frameworks, as Mesos's
//! `/files/read` and `/files/browse`, confined to the agent's sandboxes. A path that resolves
//! (after `..` and symlinks) outside them is refused with 403 and counted.
//!
//! Who may read a framework's sandboxes: a principal `--acls` `access_sandboxes` lets read its
//! user's (see [`crate::sandbox_owner`]); everyone without ACLs, as in Mesos. The principal is
//! the request's client certificate or HTTP Basic credentials (`--authenticate-http-readonly`);
//! without either only rules for `ANY` principal admit it.
//!
//! Routes:
//! - `GET /files/read?path=P&offset=O&length=L` → `{"data": "...", "offset": O}`; without an
//!   offset (or `-1`) the reply is `{"data": "", "offset": <file size>}`, as in Mesos, so a
//!   reader can tail a file. At most [`MAX_READ_BYTES`] per request.
//! - `GET /files/browse?path=P` → the directory's entries (`path`, `size`, `mode`, `mtime`,
//!   `nlink`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use authentication::acls::{Acls, Action};
use libactor::metrics::Counter;
use libactor::{Context, HttpRequest, HttpResponse, Process};
use serde_json::json;

/// Most bytes one `/files/read` returns.
pub const MAX_READ_BYTES: u64 = 1 << 20;

/// Serves the files under one root.
pub struct Files {
    root: PathBuf,
    acls: Acls,
    refused: Option<Counter>,
}

impl Files {
    /// Serves files under `root` (the agent's `{work_dir}/slaves`) to whom `acls` admits.
    pub fn new(root: PathBuf, acls: Acls) -> Files {
        Files {
            root,
            acls,
            refused: None,
        }
    }

    fn refuse(&self, status: u16, why: String) -> HttpResponse {
        if let Some(c) = &self.refused {
            c.inc();
        }
        tracing::warn!(%why, "file request refused");
        HttpResponse::text(status, why)
    }

    /// The file or directory `req` names, resolved, if it lies under the root and the
    /// request's principal may read that framework's sandboxes.
    fn open(&self, req: &HttpRequest) -> Result<PathBuf, HttpResponse> {
        let path = self.confine(req.query_param("path"))?;
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        if let Some(user) = crate::sandbox_owner::of(&root, &path) {
            let principal = req.principal.as_deref();
            if !self.acls.permits(Action::AccessSandbox, principal, &user) {
                return Err(self.refuse(
                    403,
                    format!(
                        "{} may not read the sandboxes of user {user:?} (--acls access_sandboxes)",
                        principal.unwrap_or("an unauthenticated client")
                    ),
                ));
            }
        }
        Ok(path)
    }

    /// `path` resolved, if it exists and lies under the root.
    fn confine(&self, path: Option<&str>) -> Result<PathBuf, HttpResponse> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Err(HttpResponse::bad_request("expected ?path=<absolute path>"));
        };
        let root = std::fs::canonicalize(&self.root)
            .map_err(|_| HttpResponse::not_found(format!("{path}: no sandboxes yet")))?;
        // Refused before the file system is asked, so that nothing is learnt of what exists
        // outside; then again after symlinks are followed.
        let lexical = lexically_normal(Path::new(path));
        let resolved = match lexical.filter(|p| p.starts_with(&root) || p.starts_with(&self.root)) {
            Some(p) => std::fs::canonicalize(&p)
                .map_err(|e| HttpResponse::not_found(format!("{path}: {e}")))?,
            None => PathBuf::new(),
        };
        if !resolved.starts_with(&root) {
            return Err(self.refuse(403, format!("{path} is outside the agent's sandboxes")));
        }
        Ok(resolved)
    }

    fn read(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let path = match self.open(&req) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let number = |name: &str| -> Result<Option<i64>, HttpResponse> {
            req.query_param(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        HttpResponse::bad_request(format!("{name}={v:?} is not a whole number"))
                    })
                })
                .transpose()
        };
        let (offset, length) = match (number("offset"), number("length")) {
            (Ok(o), Ok(l)) => (o, l),
            (Err(reply), _) | (_, Err(reply)) => return reply,
        };
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return HttpResponse::not_found(format!("{}: {e}", path.display())),
        };
        let size = match file.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return HttpResponse::bad_request(format!("{} is not a file", path.display())),
            Err(e) => return HttpResponse::not_found(format!("{}: {e}", path.display())),
        };
        let Some(offset) = offset.filter(|o| *o >= 0) else {
            return HttpResponse::json(&json!({ "data": "", "offset": size }));
        };
        let offset = (offset as u64).min(size);
        let length = length
            .map_or(MAX_READ_BYTES, |l| l.max(0) as u64)
            .min(MAX_READ_BYTES);
        let mut data = Vec::new();
        let read = file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(length).read_to_end(&mut data));
        if let Err(e) = read {
            return HttpResponse::text(500, format!("{}: {e}", path.display()));
        }
        HttpResponse::json(&json!({
            "data": String::from_utf8_lossy(&data),
            "offset": offset,
        }))
    }

    fn browse(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        use std::os::unix::fs::MetadataExt;
        let path = match self.open(&req) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) => return HttpResponse::bad_request(format!("{}: {e}", path.display())),
        };
        let mut list: Vec<serde_json::Value> = entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some(json!({
                    "path": e.path().display().to_string(),
                    "size": meta.len(),
                    "mode": format!("{:o}", meta.mode()),
                    "mtime": meta.mtime(),
                    "nlink": meta.nlink(),
                }))
            })
            .collect();
        list.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        HttpResponse::json(&list)
    }
}

/// `path` with `.` and `..` resolved without the file system; none if it is not absolute.
fn lexically_normal(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

impl Process for Files {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.refused = Some(ctx.metrics().counter("files/requests_refused"));
        ctx.route("/read", Self::read);
        ctx.route("/browse", Self::browse);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_without_the_file_system() {
        let n = |p: &str| lexically_normal(Path::new(p));
        assert_eq!(n("/a/b/../c/./d"), Some(PathBuf::from("/a/c/d")));
        assert_eq!(n("/a/../../../etc"), Some(PathBuf::from("/etc")));
        assert_eq!(n("relative/x"), None);
    }
}
