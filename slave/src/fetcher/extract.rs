//! Archive extraction into a sandbox: `.tar.gz` / `.tgz` / `.tar` and `.zip`. Entries that
//! would land outside the sandbox (absolute paths, `..`) are refused, not skipped silently.

use std::fs::File;
use std::path::{Component, Path};

/// Whether `name` is an archive the fetcher extracts.
pub fn is_archive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".tar.gz") || n.ends_with(".tgz") || n.ends_with(".tar") || n.ends_with(".zip")
}

/// Extracts `archive` into `into`. Blocking.
pub fn extract(archive: &Path, into: &Path) -> Result<(), String> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let file = File::open(archive).map_err(|e| e.to_string())?;
    if name.ends_with(".zip") {
        extract_zip(file, into)
    } else if name.ends_with(".tar") {
        extract_tar(tar::Archive::new(file), into)
    } else {
        extract_tar(tar::Archive::new(flate2::read::GzDecoder::new(file)), into)
    }
}

fn inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn extract_tar<R: std::io::Read>(mut archive: tar::Archive<R>, into: &Path) -> Result<(), String> {
    archive.set_preserve_permissions(true);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if !inside(&path) {
            return Err(format!("entry {} would leave the sandbox", path.display()));
        }
        entry
            .unpack_in(into)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn extract_zip(file: File, into: &Path) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let Some(path) = entry.enclosed_name() else {
            return Err(format!("entry {} would leave the sandbox", entry.name()));
        };
        let dest = into.join(&path);
        if entry.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut out = File::create(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", dest.display()))?;
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode & 0o7777));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_by_their_names() {
        assert!(is_archive("app.tar.gz"));
        assert!(is_archive("APP.TGZ"));
        assert!(is_archive("x.zip"));
        assert!(!is_archive("run.sh"));
    }

    #[test]
    fn a_tar_gz_extracts_and_an_escaping_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&archive).unwrap(),
                flate2::Compression::fast(),
            );
            let mut builder = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(5);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, "bin/hello", &b"hello"[..])
                .unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        extract(&archive, &out).unwrap();
        assert_eq!(std::fs::read(out.join("bin/hello")).unwrap(), b"hello");
        assert!(!inside(Path::new("../x")));
        assert!(!inside(Path::new("/etc/passwd")));
        assert!(inside(Path::new("./a/b")));
    }
}
