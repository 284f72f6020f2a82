//! The deployment server: holds manifests' files by content (their sha256) and serves them to
//! the agents' filesync in chunks. It runs beside the device manager (`deployment` on the
//! master's node).
//!
//! Congestion control (seed 000): at most [`DeploymentServerConfig::max_transfers`] files are
//! in transfer at once. A transfer is named by its client (`transfer=`); a chunk of a transfer
//! not admitted while the server is full is answered 503 (the client backs off and retries).
//! A transfer ends with its last chunk, or after [`TRANSFER_IDLE`] without one.
//!
//! Routes: `POST /deployment/files` (an operator uploads a file; answered with its sha256),
//! `GET /deployment/file?sha256=&transfer=&offset=&length=` (a chunk), `GET
//! /deployment/files` (what is held).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libactor::http::HttpReply;
use libactor::metrics::{Counter, Gauge};
use libactor::{Context, HttpRequest, HttpResponse, Process};

use crate::manifest::sha256_hex;

/// The deployment server's process id.
pub const DEPLOYMENT_SERVER_ID: &str = "deployment";
/// A transfer without a chunk for this long is over.
pub const TRANSFER_IDLE: Duration = Duration::from_secs(30);
/// Largest chunk served.
pub const MAX_CHUNK: u64 = 4 * 1024 * 1024;

/// How the deployment server serves.
#[derive(Debug, Clone)]
pub struct DeploymentServerConfig {
    /// Where files are kept, one per sha256.
    pub dir: PathBuf,
    /// Files in transfer at once.
    pub max_transfers: usize,
    /// Who may upload (none: anyone who reaches the port).
    pub operators: Option<authentication::Credentials>,
}

struct Metrics {
    active: Gauge,
    peak: Gauge,
    busy: Counter,
    bytes: Counter,
    uploads: Counter,
    refused: Counter,
}

/// The deployment server process.
pub struct DeploymentServer {
    config: DeploymentServerConfig,
    /// Transfers admitted: id → last chunk served.
    transfers: HashMap<String, Instant>,
    peak: usize,
    metrics: Option<Metrics>,
}

impl DeploymentServer {
    /// A server keeping its files in `config.dir` (created if missing).
    pub fn new(config: DeploymentServerConfig) -> std::io::Result<DeploymentServer> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(DeploymentServer {
            config,
            transfers: HashMap::new(),
            peak: 0,
            metrics: None,
        })
    }

    /// The most transfers that were ever in progress at once.
    pub fn peak_transfers(&self) -> usize {
        self.peak
    }

    fn upload(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        if req.method != "POST" {
            return HttpResponse::text(405, "POST a file's content\n").into();
        }
        if let Some(credentials) = &self.config.operators {
            if let Err(e) =
                credentials.check_basic(req.headers.get("authorization").map(String::as_str))
            {
                if let Some(m) = &self.metrics {
                    m.refused.inc();
                }
                return HttpResponse::text(401, format!("{e}\n")).into();
            }
        }
        if let Some(m) = &self.metrics {
            m.uploads.inc();
        }
        let digest = sha256_hex(&req.body);
        let path = self.config.dir.join(&digest);
        let size = req.body.len();
        HttpReply::Later(Box::pin(async move {
            // Written aside then renamed: a reader never sees half a file under its digest.
            let part = path.with_extension("upload");
            let written = async {
                tokio::fs::write(&part, &req.body).await?;
                tokio::fs::rename(&part, &path).await
            };
            match written.await {
                Ok(()) => HttpResponse::json(&serde_json::json!({"sha256": digest, "size": size})),
                Err(e) => HttpResponse::text(500, format!("cannot store the file: {e}\n")),
            }
        }))
    }

    fn list(&mut self, _ctx: &mut Context<Self>, _req: HttpRequest) -> HttpResponse {
        let files: Vec<String> = std::fs::read_dir(&self.config.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect();
        HttpResponse::json(&serde_json::json!({
            "files": files,
            "transfers": self.transfers.len(),
            "max_transfers": self.config.max_transfers,
            "peak_transfers": self.peak,
        }))
    }

    fn chunk(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        let param = |k: &str| req.query_param(k).map(str::to_owned);
        let (Some(sha), Some(transfer)) = (param("sha256"), param("transfer")) else {
            return HttpResponse::text(400, "needs sha256= and transfer=\n").into();
        };
        let number = |k: &str, default: u64| {
            param(k).map_or(Ok(default), |v| v.parse::<u64>().map_err(|_| k.to_owned()))
        };
        let (offset, length) = match (number("offset", 0), number("length", MAX_CHUNK)) {
            (Ok(o), Ok(l)) => (o, l.clamp(1, MAX_CHUNK)),
            (Err(k), _) | (_, Err(k)) => {
                return HttpResponse::text(400, format!("{k} must be a number\n")).into()
            }
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || transfer.len() > 128 {
            return HttpResponse::text(400, "bad sha256 or transfer\n").into();
        }
        let now = ctx.node().clock().now();
        self.transfers
            .retain(|_, last| now.saturating_duration_since(*last) < TRANSFER_IDLE);
        if !self.transfers.contains_key(&transfer)
            && self.transfers.len() >= self.config.max_transfers
        {
            if let Some(m) = &self.metrics {
                m.busy.inc();
            }
            return HttpResponse::text(503, "busy: too many transfers; retry later\n").into();
        }
        self.transfers.insert(transfer.clone(), now);
        self.peak = self.peak.max(self.transfers.len());
        if let Some(m) = &self.metrics {
            m.active.set(self.transfers.len() as i64);
            m.peak.set(self.peak as i64);
        }
        let path = self.config.dir.join(&sha);
        let me = ctx.self_ref();
        let bytes = self.metrics.as_ref().map(|m| m.bytes.clone());
        HttpReply::Later(Box::pin(async move {
            let read = read_range(&path, offset, length).await;
            let last = match &read {
                Ok((data, size)) => offset + data.len() as u64 >= *size,
                Err(_) => true,
            };
            if last {
                me.dispatch(move |s: &mut DeploymentServer, _| {
                    s.transfers.remove(&transfer);
                    if let Some(m) = &s.metrics {
                        m.active.set(s.transfers.len() as i64);
                    }
                });
            }
            match read {
                Ok((data, size)) => {
                    if let Some(b) = bytes {
                        b.add(data.len() as u64);
                    }
                    HttpResponse {
                        status: 200,
                        content_type: "application/octet-stream".into(),
                        headers: vec![("x-file-size".into(), size.to_string())],
                        body: data.into(),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    HttpResponse::text(404, format!("no file {sha}\n"))
                }
                Err(e) => HttpResponse::text(500, format!("cannot read: {e}\n")),
            }
        }))
    }
}

/// Up to `length` bytes of `path` from `offset`, and the file's size.
async fn read_range(
    path: &std::path::Path,
    offset: u64,
    length: u64,
) -> std::io::Result<(Vec<u8>, u64)> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let start = offset.min(size);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut data = Vec::new();
    file.take(length.min(size - start))
        .read_to_end(&mut data)
        .await?;
    Ok((data, size))
}

impl Process for DeploymentServer {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics = Some(Metrics {
            active: m.gauge("deployment/transfers_active"),
            peak: m.gauge("deployment/transfers_peak"),
            busy: m.counter("deployment/busy_refusals"),
            bytes: m.counter("deployment/bytes_served"),
            uploads: m.counter("deployment/uploads"),
            refused: m.counter("deployment/unauthorized_requests"),
        });
        ctx.route(
            "/files",
            |s: &mut Self, ctx: &mut Context<Self>, req: HttpRequest| {
                if req.method == "GET" {
                    HttpReply::Now(s.list(ctx, req))
                } else {
                    s.upload(ctx, req)
                }
            },
        );
        ctx.route("/file", Self::chunk);
    }
}
