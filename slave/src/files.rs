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
//!   `nlink`, `uid`, `gid`).
//! - `GET /files/download?path=P` → the file itself (`application/octet-stream`, as an
//!   attachment), up to [`MAX_DOWNLOAD_BYTES`].
//!
//! The agent's operator API answers `LIST_FILES` and `READ_FILE` from the same
//! [`SandboxFiles`].

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use authentication::acls::{Acls, Action};
use authentication::os_user;
use libactor::metrics::Counter;
use libactor::{Context, HttpRequest, HttpResponse, Process};
use serde_json::json;

/// Most bytes one `/files/read` (or `READ_FILE`) returns.
pub const MAX_READ_BYTES: u64 = 1 << 20;
/// Largest file `/files/download` sends whole (larger ones are read in pieces with
/// `/files/read`).
pub const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;

/// Why a file request was refused: an HTTP status and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRefusal {
    /// 400 (bad request), 403 (outside the sandboxes or not allowed), 404, 413 or 500.
    pub status: u16,
    /// What was wrong.
    pub why: String,
}

impl FileRefusal {
    fn new(status: u16, why: impl Into<String>) -> FileRefusal {
        FileRefusal {
            status,
            why: why.into(),
        }
    }
}

/// A piece of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// The bytes read.
    pub data: Vec<u8>,
    /// Where they start in the file.
    pub offset: u64,
    /// The file's size.
    pub size: u64,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its absolute path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its mode bits (type and permissions).
    pub mode: u32,
    /// When it was last modified (seconds since the epoch).
    pub mtime: i64,
    /// Its hard links.
    pub nlink: u64,
    /// Its owner's and group's names (their numbers when they have none).
    pub uid: String,
    /// See `uid`.
    pub gid: String,
}

/// The agent's sandboxes as files to read: what `/files` and the operator API's
/// `LIST_FILES` / `READ_FILE` serve. Every path is confined to the root and checked against
/// the `access_sandboxes` rules for the principal asking.
#[derive(Debug, Clone)]
pub struct SandboxFiles {
    root: PathBuf,
    acls: Acls,
}

impl SandboxFiles {
    /// The files under `root` (the agent's `{work_dir}/slaves`), for whom `acls` admits.
    pub fn new(root: PathBuf, acls: Acls) -> SandboxFiles {
        SandboxFiles { root, acls }
    }

    /// The file or directory at `path`, resolved, if it lies under the root and `principal`
    /// may read that framework's sandboxes.
    pub fn open(&self, path: &str, principal: Option<&str>) -> Result<PathBuf, FileRefusal> {
        let path = self.confine(path)?;
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        if let Some(user) = crate::sandbox_owner::of(&root, &path) {
            if !self.acls.permits(Action::AccessSandbox, principal, &user) {
                return Err(FileRefusal::new(
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
    fn confine(&self, path: &str) -> Result<PathBuf, FileRefusal> {
        if path.is_empty() {
            return Err(FileRefusal::new(400, "expected a path (absolute)"));
        }
        let root = std::fs::canonicalize(&self.root)
            .map_err(|_| FileRefusal::new(404, format!("{path}: no sandboxes yet")))?;
        // Refused before the file system is asked, so that nothing is learnt of what exists
        // outside; then again after symlinks are followed.
        let lexical = lexically_normal(Path::new(path));
        let resolved = match lexical.filter(|p| p.starts_with(&root) || p.starts_with(&self.root)) {
            Some(p) => std::fs::canonicalize(&p)
                .map_err(|e| FileRefusal::new(404, format!("{path}: {e}")))?,
            None => PathBuf::new(),
        };
        if !resolved.starts_with(&root) {
            return Err(FileRefusal::new(
                403,
                format!("{path} is outside the agent's sandboxes"),
            ));
        }
        Ok(resolved)
    }

    /// Up to `length` bytes (at most [`MAX_READ_BYTES`]) of the file at `path` from `offset`
    /// (clamped to its size); no offset reads nothing and tells the size, as Mesos's
    /// `/files/read` does, so a reader can tail a file.
    pub fn read(
        &self,
        path: &str,
        offset: Option<u64>,
        length: Option<u64>,
        principal: Option<&str>,
    ) -> Result<FileChunk, FileRefusal> {
        let path = self.open(path, principal)?;
        let (mut file, size) = open_file(&path)?;
        let Some(offset) = offset else {
            return Ok(FileChunk {
                data: Vec::new(),
                offset: size,
                size,
            });
        };
        let offset = offset.min(size);
        let length = length.unwrap_or(MAX_READ_BYTES).min(MAX_READ_BYTES);
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(length).read_to_end(&mut data))
            .map_err(|e| FileRefusal::new(500, format!("{}: {e}", path.display())))?;
        Ok(FileChunk { data, offset, size })
    }

    /// The whole file at `path`, if it is at most [`MAX_DOWNLOAD_BYTES`].
    pub fn download(
        &self,
        path: &str,
        principal: Option<&str>,
    ) -> Result<(PathBuf, Vec<u8>), FileRefusal> {
        let path = self.open(path, principal)?;
        let (mut file, size) = open_file(&path)?;
        if size > MAX_DOWNLOAD_BYTES {
            return Err(FileRefusal::new(
                413,
                format!(
                    "{} is {size} bytes, over the {MAX_DOWNLOAD_BYTES} a download sends: read it in pieces with /files/read",
                    path.display()
                ),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data)
            .map_err(|e| FileRefusal::new(500, format!("{}: {e}", path.display())))?;
        Ok((path, data))
    }

    /// The entries of the directory at `path`, sorted by path.
    pub fn list(&self, path: &str, principal: Option<&str>) -> Result<Vec<FileEntry>, FileRefusal> {
        use std::os::unix::fs::MetadataExt;
        let path = self.open(path, principal)?;
        let entries = std::fs::read_dir(&path)
            .map_err(|e| FileRefusal::new(400, format!("{}: {e}", path.display())))?;
        let mut list: Vec<FileEntry> = entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some(FileEntry {
                    path: e.path().display().to_string(),
                    size: meta.len(),
                    mode: meta.mode(),
                    mtime: meta.mtime(),
                    nlink: meta.nlink(),
                    uid: os_user::name_of(meta.uid()).unwrap_or_else(|| meta.uid().to_string()),
                    gid: os_user::group_name_of(meta.gid())
                        .unwrap_or_else(|| meta.gid().to_string()),
                })
            })
            .collect();
        list.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(list)
    }
}

/// The file at `path` and its size; a directory is refused.
fn open_file(path: &Path) -> Result<(std::fs::File, u64), FileRefusal> {
    let file = std::fs::File::open(path)
        .map_err(|e| FileRefusal::new(404, format!("{}: {e}", path.display())))?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok((file, m.len())),
        Ok(_) => Err(FileRefusal::new(
            400,
            format!("{} is not a file", path.display()),
        )),
        Err(e) => Err(FileRefusal::new(404, format!("{}: {e}", path.display()))),
    }
}

/// Serves [`SandboxFiles`] over HTTP.
pub struct Files {
    files: SandboxFiles,
    refused: Option<Counter>,
}

impl Files {
    /// Serves files under `root` (the agent's `{work_dir}/slaves`) to whom `acls` admits.
    pub fn new(root: PathBuf, acls: Acls) -> Files {
        Files {
            files: SandboxFiles::new(root, acls),
            refused: None,
        }
    }

    fn refuse(&self, refusal: FileRefusal) -> HttpResponse {
        // Refusals of access are counted; a missing file or a bad parameter is the reader's.
        if refusal.status == 403 {
            if let Some(c) = &self.refused {
                c.inc();
            }
            tracing::warn!(why = %refusal.why, "file request refused");
        }
        HttpResponse::text(refusal.status, refusal.why)
    }

    fn read(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let number = |name: &str| -> Result<Option<i64>, FileRefusal> {
            req.query_param(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        FileRefusal::new(400, format!("{name}={v:?} is not a whole number"))
                    })
                })
                .transpose()
        };
        let read = number("offset").and_then(|offset| {
            let length = number("length")?;
            self.files.read(
                req.query_param("path").unwrap_or(""),
                // A negative offset asks for the size, as no offset does.
                offset.and_then(|o| u64::try_from(o).ok()),
                length.map(|l| l.max(0) as u64),
                req.principal.as_deref(),
            )
        });
        match read {
            // Without an offset Mesos answers the size as the offset, and no data.
            Ok(chunk) => HttpResponse::json(&json!({
                "data": String::from_utf8_lossy(&chunk.data),
                "offset": chunk.offset,
            })),
            Err(refusal) => self.refuse(refusal),
        }
    }

    fn browse(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let path = req.query_param("path").unwrap_or("");
        match self.files.list(path, req.principal.as_deref()) {
            Ok(list) => {
                let list: Vec<serde_json::Value> = list
                    .into_iter()
                    .map(|e| {
                        json!({
                            "path": e.path,
                            "size": e.size,
                            "mode": format!("{:o}", e.mode),
                            "mtime": e.mtime,
                            "nlink": e.nlink,
                            "uid": e.uid,
                            "gid": e.gid,
                        })
                    })
                    .collect();
                HttpResponse::json(&list)
            }
            Err(refusal) => self.refuse(refusal),
        }
    }

    fn download(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let path = req.query_param("path").unwrap_or("");
        match self.files.download(path, req.principal.as_deref()) {
            Ok((path, data)) => {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().replace('"', ""));
                HttpResponse::bytes(200, "application/octet-stream", data).with_header(
                    "content-disposition",
                    &format!("attachment; filename=\"{name}\""),
                )
            }
            Err(refusal) => self.refuse(refusal),
        }
    }
}

/// The operator API's `LIST_FILES` or `READ_FILE` (Mesos's `agent.proto`), answered from
/// `files` for `principal`.
pub fn operator_call(
    files: &SandboxFiles,
    call: &protos::v1::agent::Call,
    principal: Option<&str>,
) -> Result<protos::v1::agent::Response, FileRefusal> {
    use protos::v1::agent::call::Type;
    use protos::v1::agent::response::{self, Type as ResponseType};
    use protos::v1::agent::Response;
    match Type::try_from(call.r#type) {
        Ok(Type::ListFiles) => {
            let Some(list) = &call.list_files else {
                return Err(FileRefusal::new(
                    400,
                    "expecting 'list_files' to be present",
                ));
            };
            let file_infos = files
                .list(&list.path, principal)?
                .into_iter()
                .map(|e| protos::v1::FileInfo {
                    path: e.path,
                    nlink: Some(e.nlink.min(i32::MAX as u64) as i32),
                    size: Some(e.size),
                    mtime: Some(protos::v1::TimeInfo {
                        nanoseconds: e.mtime.saturating_mul(1_000_000_000),
                    }),
                    mode: Some(e.mode),
                    uid: e.uid,
                    gid: e.gid,
                })
                .collect();
            Ok(Response {
                r#type: ResponseType::ListFiles as i32,
                list_files: Some(response::ListFiles { file_infos }),
                ..Default::default()
            })
        }
        Ok(Type::ReadFile) => {
            let Some(read) = &call.read_file else {
                return Err(FileRefusal::new(400, "expecting 'read_file' to be present"));
            };
            let chunk = files.read(&read.path, Some(read.offset), read.length, principal)?;
            Ok(Response {
                r#type: ResponseType::ReadFile as i32,
                read_file: Some(response::ReadFile {
                    size: chunk.size,
                    data: chunk.data.into(),
                }),
                ..Default::default()
            })
        }
        _ => Err(FileRefusal::new(400, "not a file call")),
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
        ctx.route("/download", Self::download);
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
