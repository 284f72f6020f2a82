//! URIs fetched into sandboxes inside a whole cluster, and sandbox files over HTTP: a task
//! runs a script it fetched; a checksum mismatch fails the task with `REASON_FETCHER_FAILURE`;
//! `/files/read` serves a sandbox's output and refuses paths outside the sandboxes; a finished
//! executor's sandbox is removed after `--gc_delay` (on the paused clock), and sooner when the
//! disk's usage leaves less than `--gc_disk_headroom` free.

use std::time::Duration;

use keel::local_cluster::LocalClusterConfig;
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::command_task;
use keel_tests::cluster::ClusterWithFramework;
use libactor::Clock;
use protos::v1::command_info::Uri;
use protos::v1::task_status::Reason;
use protos::v1::{TaskInfo, TaskState};

const GC_DELAY: Duration = Duration::from_secs(3600);

struct Setup {
    c: ClusterWithFramework,
    clock: Clock,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

async fn setup_with(configure: impl FnOnce(&mut LocalClusterConfig)) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.clock = Some(clock.clone());
    config.gc.delay = GC_DELAY;
    configure(&mut config);
    Setup {
        c: ClusterWithFramework::start(config).await,
        clock,
        dir,
    }
}

impl Setup {
    /// The sandbox of command task `task` (found by its stdout).
    fn sandbox_of(&self, task: &str) -> std::path::PathBuf {
        let executor = format!("/executors/{task}/");
        walk(self.dir.path())
            .into_iter()
            .find(|p| p.ends_with("stdout") && p.to_string_lossy().contains(&executor))
            .expect("the task's stdout")
            .parent()
            .unwrap()
            .to_owned()
    }

    fn agent_address(&self) -> String {
        self.c.cluster.agents[0].slave.pid().address().to_owned()
    }
}

fn with_uri(mut task: TaskInfo, uri: Uri) -> TaskInfo {
    if let Some(c) = task.command.as_mut() {
        c.uris.push(uri);
    }
    task
}

fn sha256(bytes: &[u8]) -> String {
    authentication::digest::sha256_hex(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_script_runs_its_output_is_readable_and_its_sandbox_is_collected() {
    let mut s = setup().await;
    let script = s.dir.path().join("hello.sh");
    let body = b"#!/bin/sh\necho fetched-and-run\n";
    std::fs::write(&script, body).unwrap();
    let task = with_uri(
        command_task("fetching", "./hello.sh", "cpus:0.1;mem:32"),
        Uri {
            value: format!("file://{}", script.display()),
            executable: true,
            sha256: sha256(body),
            ..Default::default()
        },
    );
    s.c.launch_on_first_offer(task).await;
    s.c.framework
        .status("fetching", TaskState::TaskFinished)
        .await;

    // The agent's state names the sandbox; /files/read serves what the task printed.
    let addr = s.agent_address();
    let sandbox = s.sandbox_of("fetching");
    let stdout = sandbox.join("stdout").display().to_string();
    let read =
        libactor::http_client::get_json(&addr, &format!("/files/read?path={stdout}&offset=0"))
            .await
            .unwrap();
    assert_eq!(read["data"], "fetched-and-run\n");
    let size = libactor::http_client::get_json(&addr, &format!("/files/read?path={stdout}"))
        .await
        .unwrap();
    assert_eq!(size["offset"], 16, "no offset: the size, to tail from");
    let listing = libactor::http_client::get_json(
        &addr,
        &format!("/files/browse?path={}", sandbox.display()),
    )
    .await
    .unwrap();
    assert!(listing.to_string().contains("hello.sh"), "{listing}");

    // Outside the sandboxes: refused, also by climbing out of one.
    for path in [
        "/etc/passwd".to_owned(),
        format!("{}/{}etc/passwd", sandbox.display(), "../".repeat(30)),
        format!(
            "{}/../../../../../../../../keel-no-such-file",
            sandbox.display()
        ),
    ] {
        let reply = libactor::http_client::request(
            &addr,
            "GET",
            &format!("/files/read?path={path}&offset=0"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 403, "{path}");
    }
    let bad = libactor::http_client::request(
        &addr,
        "GET",
        &format!("/files/read?path={stdout}&offset=abc"),
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    let refused = s.c.cluster.agents[0].node.metrics().snapshot();
    assert_eq!(refused.get("files/requests_refused"), Some(&3.0));

    // After --gc_delay the finished run's sandbox goes.
    assert!(sandbox.exists());
    s.clock.advance(GC_DELAY);
    eventually("the sandbox is collected after the gc delay", || async {
        (!sandbox.exists()).then_some(())
    })
    .await;
    s.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_fails_the_task_with_the_fetcher_reason() {
    let mut s = setup().await;
    let file = s.dir.path().join("data.bin");
    std::fs::write(&file, b"actual content").unwrap();
    let task = with_uri(
        command_task("mismatch", "cat data.bin", "cpus:0.1;mem:32"),
        Uri {
            value: file.display().to_string(),
            sha256: sha256(b"expected content"),
            ..Default::default()
        },
    );
    s.c.launch_on_first_offer(task).await;
    let failed =
        s.c.framework
            .status("mismatch", TaskState::TaskFailed)
            .await;
    assert_eq!(failed.reason(), Reason::FetcherFailure);
    assert!(
        failed.message.contains("sha256 mismatch"),
        "{}",
        failed.message
    );
    assert!(failed.message.contains("data.bin"), "{}", failed.message);
    let metrics = s.c.cluster.agents[0].node.metrics().snapshot();
    assert_eq!(metrics.get("slave/fetch_failures"), Some(&1.0));
    s.c.shutdown().await;
}

fn walk(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_without_headroom_has_finished_and_earlier_sandboxes_pruned_at_the_disk_watch() {
    const WATCH: Duration = Duration::from_secs(60);
    // Headroom 1.0: whatever the disk's real usage, none is left for finished sandboxes.
    let mut leftover = None;
    let mut s = setup_with(|config| {
        config.gc.disk_headroom = 1.0;
        config.gc.disk_watch_interval = WATCH;
        // What an earlier run of the agent left in its work dir.
        let old = config
            .work_dir
            .join("agent-0/slaves/earlier/frameworks/f/executors/e/runs/7");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("stdout"), "from before").unwrap();
        leftover = Some(old);
    })
    .await;
    let leftover = leftover.unwrap();
    s.c.launch_on_first_offer(command_task("short", "echo done", "cpus:0.1;mem:32"))
        .await;
    s.c.framework.status("short", TaskState::TaskFinished).await;
    let sandbox = s.sandbox_of("short");
    let metrics = s.c.cluster.agents[0].node.metrics();
    assert!(sandbox.exists());
    eventually(
        "the finished sandbox and the earlier run's are queued",
        || async { (metrics.snapshot()["gc/path_removals_pending"] == 2.0).then_some(()) },
    )
    .await;
    assert!(leftover.exists());

    s.clock.advance(WATCH);
    eventually(
        "the sandbox is pruned at the disk watch, long before --gc_delay",
        || async { (!sandbox.exists() && !leftover.exists()).then_some(()) },
    )
    .await;
    // What the removals left empty goes too: the finished executor's directory, and the whole
    // directory of the earlier run's framework, which is not on the agent.
    let executor_dir = sandbox.parent().unwrap().parent().unwrap().to_owned();
    let earlier_framework = leftover.ancestors().nth(4).unwrap().to_owned();
    eventually("emptied directories are removed", || async {
        (!executor_dir.exists() && !earlier_framework.exists()).then_some(())
    })
    .await;
    let after = metrics.snapshot();
    assert_eq!(after["gc/path_removals_pending"], 0.0);
    assert_eq!(after["gc/path_removals_succeeded"], 2.0);
    assert_eq!(after["gc/path_removals_failed"], 0.0);
    s.c.shutdown().await;
}
