//! Every fuzz target over its committed corpus and seeded mutations of it, on stable: the
//! short form of fuzzing that runs in CI (the long form is `cargo fuzz run`, RELIABILITY.md).
//! `KEEL_FUZZ_SEED` picks other mutations; `KEEL_FUZZ_ROUNDS` scales their number. A failing
//! input is printed in hex and written to `target/fuzz-smoke/<target>` to replay.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use keel_fuzz::{Target, TARGETS};

/// A seeded xorshift generator: the same seed, the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("a corpus file"))
        .collect()
}

/// One mutation of `input`: the kinds libFuzzer starts with (bit flips, interesting bytes,
/// insertions, deletions, copies within, splices with another seed).
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                const INTERESTING: [u8; 8] = [0, 0xff, 0x7f, 0x80, b'\n', b'{', b'"', b':'];
                let i = at.min(out.len() - 1);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => out.insert(at, rng.next() as u8),
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = rng.below(16).min(out.len() - from);
                let copy = out[from..from + len].to_vec();
                out.splice(at..at, copy);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn run_target(target: &Target, seed: u64, rounds: usize) {
    let seeds = corpus(target.name);
    assert!(!seeds.is_empty(), "{} has no corpus", target.name);
    let mut rng = Rng(seed ^ (target.name.len() as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mutations = if target.slow { rounds / 20 } else { rounds };
    let mut inputs = seeds.clone();
    for _ in 0..mutations {
        let base = seeds[rng.below(seeds.len())].clone();
        inputs.push(mutate(&mut rng, &base, &seeds));
    }
    for input in inputs {
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-smoke");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(target.name), &input);
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!(
                "fuzz target {} failed on {hex} (written to target/fuzz-smoke/{}; replay with \
                 keel_fuzz::run)",
                target.name, target.name
            );
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_target_survives_its_corpus_and_seeded_mutations() {
    let seed = env_number("KEEL_FUZZ_SEED", 0x5eed_cafe);
    let rounds = env_number("KEEL_FUZZ_ROUNDS", 2000) as usize;
    for target in TARGETS {
        run_target(target, seed, rounds);
    }
}

#[test]
fn every_target_has_a_corpus_and_a_libfuzzer_entry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in TARGETS {
        assert!(!corpus(target.name).is_empty(), "{}", target.name);
        let entry = root
            .join("libfuzzer/fuzz_targets")
            .join(format!("{}.rs", target.name));
        assert!(entry.exists(), "no cargo-fuzz entry {}", entry.display());
    }
}

/// `KEEL_FUZZ_REPLAY=<target>:<file>` runs one input (a crash libFuzzer or the smoke test
/// wrote) under the test harness, with its output.
#[test]
fn replay_an_input_named_in_the_environment() {
    let Ok(spec) = std::env::var("KEEL_FUZZ_REPLAY") else {
        return;
    };
    let (target, file) = spec
        .split_once(':')
        .expect("KEEL_FUZZ_REPLAY is <target>:<file>");
    let input = std::fs::read(file).expect("the input file reads");
    keel_fuzz::run(target, &input);
}
