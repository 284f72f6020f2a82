//! Filesync against a real deployment server over TCP: files uploaded by content, a corrupt
//! download caught by its checksum and fetched again (each time, up to the bound), and many machines syncing at once
//! without the server ever having more transfers in flight than its bound.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use autopilot::deployment_server::{
    DeploymentServer, DeploymentServerConfig, DEPLOYMENT_SERVER_ID,
};
use autopilot::filesync::{preload, FilesyncCounters, FilesyncLimits, SyncError};
use autopilot::manifest::sha256_hex;
use libactor::http_client;
use libactor::{Node, ProcessRef};
use protos::autopilot::{Manifest, ManifestFile};

const FILES: usize = 4;
const SIZE: usize = 256 * 1024;

struct Server {
    node: Node,
    process: ProcessRef<DeploymentServer>,
    dir: tempfile::TempDir,
    manifest: Manifest,
}

async fn server(max_transfers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder().start().unwrap();
    let process = node
        .spawn_ref(
            DEPLOYMENT_SERVER_ID,
            DeploymentServer::new(DeploymentServerConfig {
                dir: dir.path().join("store"),
                max_transfers,
                operators: None,
            })
            .unwrap(),
        )
        .unwrap();
    let mut files = Vec::new();
    for i in 0..FILES {
        let data: Vec<u8> = (0..SIZE).map(|b| (b * (i + 7) % 251) as u8).collect();
        let reply = http_client::request(
            node.address(),
            "POST",
            "/deployment/files",
            &[],
            data.clone().into(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200);
        let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(answer["sha256"], sha256_hex(&data));
        files.push(ManifestFile {
            path: format!("data/file-{i}"),
            sha256: sha256_hex(&data),
            size: SIZE as u64,
            executable: false,
        });
    }
    let manifest = Manifest {
        name: "blobs".into(),
        version: "1".into(),
        machine_type: "default".into(),
        files,
        processes: vec![],
    };
    Server {
        node,
        process,
        dir,
        manifest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_download_is_caught_by_its_checksum_and_fetched_again() {
    let s = server(4).await;
    let blob = s.dir.path().join("store").join(&s.manifest.files[0].sha256);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[SIZE / 2] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();

    let work = tempfile::tempdir().unwrap();
    let counters = Arc::new(FilesyncCounters::default());
    let limits = FilesyncLimits {
        chunk: 64 * 1024,
        max_attempts: 3,
        ..Default::default()
    };
    let address = s.node.address().to_owned();
    let failed = preload(
        &s.manifest,
        &address,
        work.path(),
        &limits,
        counters.clone(),
    )
    .await;
    assert_eq!(
        failed,
        Err(SyncError::Checksum {
            path: "data/file-0".into(),
            attempts: 3
        }),
        "every download of the corrupt file is caught"
    );
    assert_eq!(
        counters.checksum_failures.load(Ordering::Relaxed),
        3,
        "fetched again each time"
    );
    // The server's copy is mended; the next sync gets it right (the other files were kept).
    std::fs::write(&blob, &good).unwrap();
    let counters = Arc::new(FilesyncCounters::default());
    let sync = preload(
        &s.manifest,
        &address,
        work.path(),
        &limits,
        counters.clone(),
    )
    .await;
    let dir = sync.expect("the sync ends well");
    assert_eq!(counters.fetched.load(Ordering::Relaxed), 1);
    assert_eq!(counters.kept.load(Ordering::Relaxed), FILES as u64 - 1);
    for f in &s.manifest.files {
        assert_eq!(
            sha256_hex(&std::fs::read(dir.join(&f.path)).unwrap()),
            f.sha256
        );
    }
    // A second sync keeps what is already in place.
    let again = Arc::new(FilesyncCounters::default());
    preload(
        &s.manifest,
        s.node.address(),
        work.path(),
        &FilesyncLimits::default(),
        again.clone(),
    )
    .await
    .unwrap();
    assert_eq!(again.kept.load(Ordering::Relaxed), FILES as u64);
    assert_eq!(again.fetched.load(Ordering::Relaxed), 0);
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_machines_sync_at_once_within_the_servers_bound() {
    const MACHINES: usize = 8;
    const BOUND: usize = 2;
    let s = server(BOUND).await;
    let work = tempfile::tempdir().unwrap();
    let counters = Arc::new(FilesyncCounters::default());
    let limits = FilesyncLimits {
        chunk: 16 * 1024,
        max_concurrent: 2,
        ..Default::default()
    };
    let mut syncs = tokio::task::JoinSet::new();
    for m in 0..MACHINES {
        let (manifest, address, dir, counters, limits) = (
            s.manifest.clone(),
            s.node.address().to_owned(),
            work.path().join(format!("machine-{m}")),
            counters.clone(),
            limits.clone(),
        );
        syncs.spawn(async move { preload(&manifest, &address, &dir, &limits, counters).await });
    }
    while let Some(done) = syncs.join_next().await {
        done.unwrap().expect("every machine syncs");
    }
    assert_eq!(
        counters.fetched.load(Ordering::Relaxed),
        (MACHINES * FILES) as u64
    );
    let peak = s.process.call(|d, _| d.peak_transfers()).await.unwrap();
    assert_eq!(peak, BOUND, "the bound is reached and never exceeded");
    assert!(
        counters.busy.load(Ordering::Relaxed) > 0,
        "machines over the bound were told to wait"
    );
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunk_requests_are_refused_and_counted() {
    let s = server(4).await;
    let sha = s.manifest.files[0].sha256.clone();
    let unknown = "0".repeat(64);
    for (query, status, why) in [
        (
            "sha256=abc&transfer=t".to_owned(),
            400,
            "bad sha256 or transfer",
        ),
        ("transfer=t".to_owned(), 400, "needs sha256= and transfer="),
        (
            format!("sha256={sha}&transfer=t&offset=x"),
            400,
            "offset must be a number",
        ),
        // Neither held nor held by a machine.
        (format!("sha256={unknown}&transfer=t"), 404, "no file"),
    ] {
        let reply = http_client::request(
            s.node.address(),
            "GET",
            &format!("/deployment/file?{query}"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, status, "{query}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains(why),
            "{query}"
        );
    }
    let metrics = s.node.metrics().snapshot();
    assert_eq!(metrics.get("deployment/bad_requests"), Some(&3.0));
    assert_eq!(metrics.get("deployment/peer_fetches"), Some(&0.0));
}
