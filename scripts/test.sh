#!/usr/bin/env bash
# Sekisho's whole test suite, from a fresh clone: installs what the tests need (Debian packages),
# then checks formatting and lints and runs every unit and black-box test.
#
# The black-box tests start real `sekisho` processes, a real HTTPS cloud receiver, plain SQLite
# (python3) to show the database cannot be read, and a small tmpfs (mount, as root) for the full-disk
# test; everything listens on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v dd >/dev/null 2>&1 || need+=(coreutils)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)   # vendored OpenSSL's build
command -v radclient >/dev/null 2>&1 || need+=(freeradius-utils)   # a real RADIUS accounting client
command -v curl >/dev/null 2>&1 || need+=(curl)   # a real HTTP client (refusals, the README's tour)
command -v jq >/dev/null 2>&1 || need+=(jq)       # the README's tour
# a real SMTP server (Python aiosmtpd) for the mail tests; Debian's package serves /usr/bin/python3
python3 -c 'import aiosmtpd' 2>/dev/null || /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null ||
  need+=(python3-aiosmtpd)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ "$(id -u)" != 0 ]; then
  echo "note: the full-disk test mounts a tmpfs and needs root" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# Every binary first: the README's tour runs the simulators the suite built.
cargo build --workspace --bins --locked
cargo test --workspace --locked
echo "== console in a real browser"
bash tests/console/run.sh
