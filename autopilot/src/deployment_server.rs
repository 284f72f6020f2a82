//! The deployment server: holds manifests' files by content (their sha256) and serves them to
//! the agents' filesync in chunks. It runs beside the device manager (`deployment` on the
//! master's node).
//!
//! Congestion control (Autopilot, Isard 2007): at most [`DeploymentServerConfig::max_transfers`] files are
//! in transfer at once. A transfer is named by its client (`transfer=`); a chunk of a transfer
//! not admitted while the server is full is answered 503 (the client backs off and retries).
//! A transfer ends with its last chunk, or after [`TRANSFER_IDLE`] without one.
//!
//! Files it does not hold but machines do (a new leader's server: uploads went to the old
//! leader's disk) are fetched from one of those machines' application managers on the first
//! request, which is answered 503 meanwhile; the device manager says which machines hold what
//! ([`DeploymentServer::note_holder`]).
//!
//! Routes: `POST /deployment/files` (an operator uploads a file; answered with its sha256),
//! `GET /deployment/file?sha256=&transfer=&offset=&length=` (a chunk), `GET
//! /deployment/files` (what is held).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libactor::http::HttpReply;
use libactor::metrics::{Counter, Gauge, ProcessMetrics};
use libactor::{Context, HttpRequest, HttpResponse, Process};

use crate::app_manager::FILE_ROUTE;
use crate::filesync::{fetch_by_digest, FilesyncCounters, FilesyncLimits};
use crate::manifest::sha256_hex;

/// How long a fetch from a machine waits for a busy application manager.
const PEER_BUSY_PATIENCE: Duration = Duration::from_secs(30);

/// The deployment server's process id.
pub const DEPLOYMENT_SERVER_ID: &str = "deployment";
/// A transfer without a chunk for this long is over.
pub const TRANSFER_IDLE: Duration = Duration::from_secs(30);
/// Largest chunk served.
pub const MAX_CHUNK: u64 = 4 * 1024 * 1024;
/// Machines remembered per file as places to fetch it from.
const MAX_HOLDERS_PER_FILE: usize = 8;
/// Files whose holders are remembered.
const MAX_FILES_WITH_HOLDERS: usize = 10_000;

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
    peer_fetches: Counter,
    peer_fetch_failures: Counter,
    bad_requests: Counter,
}

/// The deployment server process.
pub struct DeploymentServer {
    config: DeploymentServerConfig,
    /// Transfers admitted: id → last chunk served.
    transfers: HashMap<String, Instant>,
    peak: usize,
    /// Machines (their agents' host:port) holding a file, newest first, by sha256.
    holders: HashMap<String, VecDeque<String>>,
    /// Files being fetched from a holder.
    fetching: HashSet<String>,
    metrics: ProcessMetrics<Metrics>,
}

impl DeploymentServer {
    /// A server keeping its files in `config.dir` (created if missing).
    pub fn new(config: DeploymentServerConfig) -> std::io::Result<DeploymentServer> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(DeploymentServer {
            config,
            transfers: HashMap::new(),
            peak: 0,
            holders: HashMap::new(),
            fetching: HashSet::new(),
            metrics: ProcessMetrics::default(),
        })
    }

    /// Records that the machine whose agent is at `address` holds `files` (sha256s): the
    /// files of the manifest it runs.
    pub fn note_holder(&mut self, _ctx: &mut Context<Self>, address: String, files: Vec<String>) {
        for sha in files {
            if !self.holders.contains_key(&sha) && self.holders.len() >= MAX_FILES_WITH_HOLDERS {
                continue;
            }
            let holders = self.holders.entry(sha).or_default();
            holders.retain(|a| *a != address);
            holders.push_front(address.clone());
            holders.truncate(MAX_HOLDERS_PER_FILE);
        }
    }

    /// Starts fetching `sha` from the machines holding it, if it is not held here and some
    /// machine holds it; whether the file is (being) fetched.
    fn fetch_from_holders(&mut self, ctx: &mut Context<Self>, sha: &str) -> bool {
        if self.fetching.contains(sha) {
            return true;
        }
        let Some(holders) = self.holders.get(sha).cloned() else {
            return false;
        };
        self.metrics.inc(|m| &m.peer_fetches);
        self.fetching.insert(sha.to_owned());
        let (sha, dir) = (sha.to_owned(), self.config.dir.clone());
        tracing::info!(%sha, holders = holders.len(), "fetching a file this server lacks from a machine holding it");
        let limits = FilesyncLimits {
            busy_patience: PEER_BUSY_PATIENCE,
            ..Default::default()
        };
        ctx.defer(
            {
                let sha = sha.clone();
                async move {
                    let counters = FilesyncCounters::default();
                    let mut why = String::new();
                    for holder in &holders {
                        match fetch_by_digest(&sha, holder, FILE_ROUTE, &dir, &limits, &counters)
                            .await
                        {
                            Ok(()) => return Ok(holder.clone()),
                            Err(e) => why = format!("{holder}: {e}"),
                        }
                    }
                    Err(why)
                }
            },
            move |s: &mut DeploymentServer, _ctx, fetched| {
                s.fetching.remove(&sha);
                match fetched {
                    Ok(holder) => tracing::info!(%sha, %holder, "fetched a file from a machine"),
                    Err(why) => {
                        // Not again: the next request is answered 404.
                        s.holders.remove(&sha);
                        s.metrics.inc(|m| &m.peer_fetch_failures);
                        tracing::warn!(%sha, %why, "no machine could give a file this server lacks");
                    }
                }
            },
        );
        true
    }

    /// The most transfers that were ever in progress at once.
    pub fn peak_transfers(&self) -> usize {
        self.peak
    }

    /// Who may upload: an operator (see [`authentication::operator`]).
    fn upload(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        if req.method != "POST" {
            return HttpResponse::text(405, "POST a file's content\n").into();
        }
        let secure = ctx.node().is_secure();
        if let Err(refusal) =
            authentication::operator::operator_of(&req, self.config.operators.as_ref(), secure)
        {
            self.metrics.inc(|m| &m.refused);
            return HttpResponse::text(refusal.status, format!("{}\n", refusal.why)).into();
        }
        self.metrics.inc(|m| &m.uploads);
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
        let ChunkRequest {
            sha,
            transfer,
            offset,
            length,
        } = match ChunkRequest::parse(&req) {
            Ok(r) => r,
            Err(refusal) => {
                self.metrics.inc(|m| &m.bad_requests);
                return refusal.into();
            }
        };
        let path = self.config.dir.join(&sha);
        if !path.exists() && self.fetch_from_holders(ctx, &sha) {
            return HttpResponse::text(503, "fetching the file from a machine; retry later\n")
                .into();
        }
        let now = ctx.node().clock().now();
        self.transfers
            .retain(|_, last| now.saturating_duration_since(*last) < TRANSFER_IDLE);
        if !self.transfers.contains_key(&transfer)
            && self.transfers.len() >= self.config.max_transfers
        {
            self.metrics.inc(|m| &m.busy);
            return HttpResponse::text(503, "busy: too many transfers; retry later\n").into();
        }
        self.transfers.insert(transfer.clone(), now);
        self.peak = self.peak.max(self.transfers.len());
        self.metrics.with(|m| {
            m.active.set(self.transfers.len() as i64);
            m.peak.set(self.peak as i64);
        });
        let me = ctx.self_ref();
        let bytes = self.metrics.get().map(|m| m.bytes.clone());
        HttpReply::Later(Box::pin(async move {
            let read = read_range(&path, offset, length).await;
            let last = match &read {
                Ok((data, size)) => offset + data.len() as u64 >= *size,
                Err(_) => true,
            };
            if last {
                me.dispatch(move |s: &mut DeploymentServer, _| {
                    s.transfers.remove(&transfer);
                    s.metrics.with(|m| m.active.set(s.transfers.len() as i64));
                });
            }
            if let (Ok((data, _)), Some(b)) = (&read, bytes) {
                b.add(data.len() as u64);
            }
            chunk_response(read, &sha)
        }))
    }
}

/// A request for a chunk of a file by digest: `?sha256=&transfer=&offset=&length=`.
pub(crate) struct ChunkRequest {
    /// The file's sha256, lower-case hex.
    pub sha: String,
    /// The client's name for the transfer.
    pub transfer: String,
    /// Where the chunk starts.
    pub offset: u64,
    /// How many bytes at most (1..=[`MAX_CHUNK`]).
    pub length: u64,
}

impl ChunkRequest {
    /// The request's parameters, or the 400 answer naming what is wrong.
    pub(crate) fn parse(req: &HttpRequest) -> Result<ChunkRequest, HttpResponse> {
        let param = |k: &str| req.query_param(k).map(str::to_owned);
        let (Some(sha), Some(transfer)) = (param("sha256"), param("transfer")) else {
            return Err(HttpResponse::text(400, "needs sha256= and transfer=\n"));
        };
        let number = |k: &str, default: u64| {
            param(k).map_or(Ok(default), |v| v.parse::<u64>().map_err(|_| k.to_owned()))
        };
        let (offset, length) = match (number("offset", 0), number("length", MAX_CHUNK)) {
            (Ok(o), Ok(l)) => (o, l.clamp(1, MAX_CHUNK)),
            (Err(k), _) | (_, Err(k)) => {
                return Err(HttpResponse::text(400, format!("{k} must be a number\n")))
            }
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || transfer.len() > 128 {
            return Err(HttpResponse::text(400, "bad sha256 or transfer\n"));
        }
        Ok(ChunkRequest {
            sha,
            transfer,
            offset,
            length,
        })
    }
}

/// The answer to a chunk request: the bytes read with the file's size in `x-file-size`, 404 for
/// a file not held, 500 for a read that failed.
pub(crate) fn chunk_response(read: std::io::Result<(Vec<u8>, u64)>, sha: &str) -> HttpResponse {
    match read {
        Ok((data, size)) => HttpResponse::bytes(200, "application/octet-stream", data)
            .with_header("x-file-size", &size.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            HttpResponse::text(404, format!("no file {sha}\n"))
        }
        Err(e) => HttpResponse::text(500, format!("cannot read: {e}\n")),
    }
}

/// Up to `length` bytes of `path` from `offset`, and the file's size.
pub(crate) async fn read_range(
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
        self.metrics.set(Metrics {
            active: m.gauge("deployment/transfers_active"),
            peak: m.gauge("deployment/transfers_peak"),
            busy: m.counter("deployment/busy_refusals"),
            bytes: m.counter("deployment/bytes_served"),
            uploads: m.counter("deployment/uploads"),
            refused: m.counter("deployment/unauthorized_requests"),
            peer_fetches: m.counter("deployment/peer_fetches"),
            peer_fetch_failures: m.counter("deployment/peer_fetch_failures"),
            bad_requests: m.counter("deployment/bad_requests"),
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
