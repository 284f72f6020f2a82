#!/usr/bin/env bash
# Makes target/pymesos-venv: a Python venv with pymesos (and kazoo, for its zk:// detector), the
# unmodified third-party Mesos client the scheduler API tests drive. Prints the venv's python.
#
# pymesos needs http-parser, whose C extension no longer builds on Python 3.11; http-parser then
# uses its own pure-Python parser (http_parser.pyparser), so its package is installed from its
# source distribution without the extension. Idempotent: an existing working venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pymesos-venv
python=$venv/bin/python
if [ -x "$python" ] && "$python" -c 'import pymesos, kazoo, http_parser.http' 2>/dev/null; then
  echo "$PWD/$python"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps \
  pymesos==0.3.15 six==1.17.0 addict==2.4.0 kazoo==2.11.0 >&2
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
"$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
  http-parser==0.9.0 -d "$src" >&2
tar -xzf "$src"/http-parser-0.9.0.tar.gz -C "$src"
site=$("$python" -c 'import site; print(site.getsitepackages()[0])')
cp -r "$src"/http-parser-0.9.0/http_parser "$site"/
rm -f "$site"/http_parser/*.so "$site"/http_parser/*.c "$site"/http_parser/*.pyx
"$python" -c 'import pymesos, kazoo, http_parser.http' >&2
echo "$PWD/$python"
