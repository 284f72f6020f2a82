//! `http://` downloads for the fetcher: one GET per URI, the body streamed to the destination
//! file frame by frame (never held in memory), bounded in bytes and in time. Redirects are not
//! followed: a 3xx is reported with its `Location`, so the framework can give the final URL.

use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::FetchError;

/// Downloads `url` (whose part after `http://` is `rest`) to `dest`.
pub async fn download(
    url: &str,
    rest: &str,
    dest: &Path,
    max_bytes: u64,
    timeout: Duration,
) -> Result<(), FetchError> {
    match tokio::time::timeout(timeout, get(url, rest, dest, max_bytes)).await {
        Ok(result) => result,
        Err(_) => {
            let _ = tokio::fs::remove_file(dest).await;
            Err(FetchError::Download {
                uri: url.to_owned(),
                why: format!("not done within {timeout:?}"),
            })
        }
    }
}

async fn get(url: &str, rest: &str, dest: &Path, max_bytes: u64) -> Result<(), FetchError> {
    let fail = |why: String| FetchError::Download {
        uri: url.to_owned(),
        why,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(fail("no host".into()));
    }
    let connect_to = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let response = crate::http_get::get(&connect_to, authority, path)
        .await
        .map_err(fail)?;
    let status = response.status();
    if !status.is_success() {
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| format!(" (Location: {l})"))
            .unwrap_or_default();
        return Err(fail(format!("HTTP status {status}{location}")));
    }
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| fail(format!("cannot create {}: {e}", dest.display())))?;
    let mut body = response.into_body();
    let mut written: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        written += data.len() as u64;
        if written > max_bytes {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(fail(format!("larger than the {max_bytes}-byte limit")));
        }
        file.write_all(&data)
            .await
            .map_err(|e| fail(format!("writing {}: {e}", dest.display())))?;
    }
    file.flush().await.map_err(|e| fail(e.to_string()))?;
    Ok(())
}
