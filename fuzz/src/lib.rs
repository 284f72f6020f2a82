//! Fuzz targets: every parser that reads bytes from outside a Keel process, each behind a
//! function of `&[u8]` that panics only when an invariant breaks. The cargo-fuzz harness in
//! `fuzz/libfuzzer` runs them coverage-guided on nightly; the `smoke` test runs each over its
//! committed corpus (`fuzz/corpus/<target>/`) and seeded mutations of it on stable, in CI.
//!
//! ```
//! // A frame whose length says 3 bytes, then 3 bytes: one frame, not an envelope; no panic.
//! keel_fuzz::run("frame_stream", &[7, 0, 0, 0, 3, 1, 2, 3]);
//! assert!(keel_fuzz::TARGETS.iter().any(|t| t.name == "upid"));
//! ```

mod files;
mod node_targets;
mod wire;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the cargo-fuzz target's and the corpus directory's.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
    /// Whether one input costs a round trip through a running node (the smoke test runs
    /// fewer of those).
    pub slow: bool,
}

const fn fast(name: &'static str, run: fn(&[u8])) -> Target {
    Target {
        name,
        run,
        slow: false,
    }
}

/// Every target.
pub const TARGETS: &[Target] = &[
    fast("frame_stream", libactor::fuzzing::frame_stream),
    fast("upid", libactor::fuzzing::upid),
    fast("recordio", wire::recordio),
    fast("v1_scheduler_call", wire::v1_scheduler_call),
    fast("v1_executor_call", wire::v1_executor_call),
    fast("v1_operator_call", wire::v1_operator_call),
    fast("keelctl_send", wire::keelctl_send),
    fast("resources", files::resources),
    fast("attributes", files::attributes),
    fast("manifest", files::manifest),
    fast("acls", files::acls),
    fast("credentials", files::credentials),
    Target {
        name: "master_connection",
        run: node_targets::master_connection,
        slow: true,
    },
    Target {
        name: "scheduler_api",
        run: node_targets::scheduler_api,
        slow: true,
    },
    Target {
        name: "operator_api",
        run: node_targets::operator_api,
        slow: true,
    },
];

/// Runs `data` through the target called `name`.
///
/// # Panics
/// When no target has that name, or (the finding) when the target's invariant breaks.
pub fn run(name: &str, data: &[u8]) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    (target.run)(data)
}
