//! Prints, after a criterion run, the ratio of each libactor benchmark to its baseline from the
//! same run, using the medians criterion wrote under `target/criterion`.

use std::path::PathBuf;

/// Median time per iteration (ns) of `group/bench` from criterion's latest estimates.
fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints `libactor / baseline` for each (group, libactor bench, baseline bench, unit count).
/// `per_iter` is how many messages one iteration carries, to print a per-message cost too.
pub fn report(rows: &[(&str, &str, &str, u64)]) {
    println!("\n== libactor vs baseline (medians of this run) ==");
    for (group, ours, baseline, per_iter) in rows {
        match (median_ns(group, ours), median_ns(group, baseline)) {
            (Some(a), Some(b)) => println!(
                "{group}: {ours} {:.0} ns/msg, {baseline} {:.0} ns/msg, time ratio {:.2}x, throughput ratio {:.0}%",
                a / *per_iter as f64,
                b / *per_iter as f64,
                a / b,
                100.0 * b / a
            ),
            _ => println!("{group}: no estimates (benchmark filtered out?)"),
        }
    }
}
