#!/usr/bin/env bash
# Runs every Keel test on a fresh Debian 12 machine that has only a Rust toolchain.
# Installs what the tests need first, then checks formatting and lints, then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need: Debian's `zookeeper` (with its Java runtime), which the
# high-availability tests start, one server per test on a free 127.0.0.1 port; `iproute2` and
# `nftables`, with which the partition test builds network namespaces joined by a veth pair and
# cuts them apart; `chromium`, in which the cockpit test renders Autopilot's web page headless.
# Protos compile with the pure-Rust protox; every other test talks to nodes it starts itself on
# 127.0.0.1.
packages=(zookeeper iproute2 nftables chromium)
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
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
test -f /usr/share/java/zookeeper.jar || { echo "zookeeper.jar missing after install" >&2; exit 1; }
command -v nft >/dev/null || { echo "nft missing after install" >&2; exit 1; }
command -v chromium >/dev/null || { echo "chromium missing after install" >&2; exit 1; }

# pymesos (the unmodified Python Mesos client the scheduler API tests drive), in a venv under
# target/ made from PyPI.
echo "== pymesos venv"
KEEL_PYMESOS_PYTHON=$(bash scripts/pymesos-venv.sh)
export KEEL_PYMESOS_PYTHON

# A one-off build gains nothing from incremental state, which would take gigabytes of disk.
export CARGO_INCREMENTAL=0
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --workspace
