#!/usr/bin/env bash
# Runs every Keel test on a fresh Debian 12 machine that has only a Rust toolchain.
# Installs what the tests need first, then checks formatting and lints, then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need. Nothing yet beyond Rust: protos compile with the pure-Rust
# protox, and every test talks to nodes it starts itself on 127.0.0.1. (ZooKeeper, Debian's
# `zookeeper` package, joins this list with the high-availability work.)
packages=()
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --workspace
