//! The fetcher against real files and a real HTTP server on 127.0.0.1: copies, downloads,
//! sha256 checks, executables, archives, the shared cache, and clear errors for what it
//! cannot or must not fetch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use protos::v1::command_info::Uri;
use slave::fetcher::{FetchError, Fetcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `body` at any path with 200 (or `status`), counting requests; stops with the test.
async fn serve(body: Vec<u8>, status: u16) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    (addr, hits)
}

fn sha256(bytes: &[u8]) -> String {
    authentication::digest::sha256_hex(bytes)
}

fn uri(value: &str) -> Uri {
    Uri {
        value: value.into(),
        ..Default::default()
    }
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn fetcher(dir: &Path) -> Fetcher {
    Fetcher::new(dir.join("cache"), 1 << 20)
}

#[tokio::test]
async fn local_files_are_copied_checked_and_made_executable() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    let sandbox = dir.path().join("sandbox");
    let mut u = uri(&format!("file://{}", script.display()));
    u.executable = true;
    u.sha256 = sha256(b"#!/bin/sh\necho hi\n");
    fetcher(dir.path()).fetch(&u, &sandbox).await.unwrap();
    let fetched = sandbox.join("run.sh");
    let out = std::process::Command::new(&fetched).output().unwrap();
    assert_eq!(out.stdout, b"hi\n", "the fetched script runs");

    // The same file under another name, by plain path.
    let mut renamed = uri(&script.display().to_string());
    renamed.output_file = "other".into();
    fetcher(dir.path()).fetch(&renamed, &sandbox).await.unwrap();
    assert!(sandbox.join("other").is_file());
}

#[tokio::test]
async fn downloads_are_extracted_and_cached_by_content() {
    let archive = tar_gz(&[("data/hello", b"world")]);
    let sum = sha256(&archive);
    let (addr, hits) = serve(archive, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let mut u = uri(&format!("http://{addr}/pkg/app.tar.gz"));
    u.cache = true;
    u.sha256 = sum.clone();
    let first = dir.path().join("s1");
    f.fetch(&u, &first).await.unwrap();
    assert_eq!(std::fs::read(first.join("data/hello")).unwrap(), b"world");
    assert!(first.join("app.tar.gz").is_file());
    // A second task fetching the same content from another URL is served from the cache.
    let mut again = u.clone();
    again.value = format!("http://{addr}/mirror/app.tar.gz");
    let second = dir.path().join("s2");
    f.fetch(&again, &second).await.unwrap();
    assert_eq!(std::fs::read(second.join("data/hello")).unwrap(), b"world");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one download for two tasks");
}

#[tokio::test]
async fn a_checksum_mismatch_is_an_error_and_leaves_no_file() {
    let (addr, _) = serve(b"not what you expect".to_vec(), 200).await;
    let dir = tempfile::tempdir().unwrap();
    let mut u = uri(&format!("http://{addr}/x.bin"));
    u.sha256 = sha256(b"something else");
    let sandbox = dir.path().join("s");
    let err = fetcher(dir.path()).fetch(&u, &sandbox).await.unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    assert!(!sandbox.join("x.bin").exists());
}

#[tokio::test]
async fn what_cannot_or_must_not_be_fetched_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let sandbox = dir.path().join("s");
    let (addr, _) = serve(b"gone".to_vec(), 404).await;
    let cases = [
        (uri(&format!("http://{addr}/missing")), "404"),
        (uri("https://127.0.0.1:1/x"), "https is not supported"),
        (uri("relative/path"), "absolute path"),
        (uri("/nonexistent/keel-test-file"), "No such file"),
        (uri("http://127.0.0.1:1/refused"), "cannot connect"),
    ];
    for (u, expected) in cases {
        let err = f.fetch(&u, &sandbox).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{}: {err}", u.value);
        assert!(err.contains(&u.value), "the error names the URI: {err}");
    }
    // An archive whose entry climbs out of the sandbox is refused.
    let evil = dir.path().join("evil.tar");
    {
        let mut builder = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        // Written by hand: tar's builder refuses `..` paths, as an attacker's tool would not.
        header.as_old_mut().name[..7].copy_from_slice(b"../pwn\0");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        builder.finish().unwrap();
    }
    let err = f
        .fetch(&uri(&evil.display().to_string()), &sandbox)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("would leave the sandbox"), "{err}");
    assert!(!dir.path().join("pwn").exists());
}

#[tokio::test]
async fn local_files_outside_the_allowed_paths_are_refused_even_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::write(allowed.join("tool"), b"ok").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", allowed.join("sneaky")).unwrap();
    let sandbox = dir.path().join("sandbox");
    let f = fetcher(dir.path()).with_allowed_paths(Some(vec![allowed.clone()]));

    f.fetch(
        &uri(&format!("file://{}", allowed.join("tool").display())),
        &sandbox,
    )
    .await
    .expect("a file under an allowed path");
    for outside in [
        "/etc/passwd".to_owned(),
        format!("file://{}", allowed.join("sneaky").display()),
        format!("{}/../allowed/../../../etc/passwd", allowed.display()),
    ] {
        let err = f.fetch(&uri(&outside), &sandbox).await.unwrap_err();
        assert!(
            err.to_string().contains("--fetcher-allowed-paths"),
            "{outside}: {err}"
        );
    }
    assert!(!sandbox.join("passwd").exists() && !sandbox.join("sneaky").exists());
}
