#!/usr/bin/env bash
# Benchmark: recovery of the message log after SIGKILL. Appends BENCH_RECORDS records (default 1,000,000,
# 300 bytes each) with sync on, kills the writer with SIGKILL once all are acknowledged, then times the
# recovery pass at open and reads every record back, checking each against what was written, with the
# page cache dropped first (when run as root) and again warm.
#
# Usage (from the repository root):  scripts/bench/recovery.sh
#   BENCH_RECORDS   records to append (default 1000000)
#   BENCH_TMPDIR    where the log goes (default $TMPDIR or /tmp)
#
# A measurement, not a test: it exits non-zero only when an acknowledged record is missing or wrong.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N=${BENCH_RECORDS:-1000000}
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/sekisho-recovery.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q -p sekisho-log --example recovery
BIN=target/release/examples/recovery
"$BIN" fill "$WORK/log" "$N" >"$WORK/fill.out" &
PID=$!
until grep -q '^acked' "$WORK/fill.out" 2>/dev/null; do
    kill -0 "$PID" 2>/dev/null || { echo "recovery.sh: the writer exited early" >&2; exit 1; }
    sleep 0.2
done
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
ACKED=$(awk '/^acked/ {print $2}' "$WORK/fill.out")
echo "killed with SIGKILL after $ACKED acknowledged records ($(du -sh "$WORK/log" | cut -f1) on disk, $(df -T "$WORK" | awk 'NR==2 {print $2}'))"
# Cold: the page cache dropped (root only), so the recovery pass reads the disk.
if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    echo -n "cold cache: "
    "$BIN" check "$WORK/log" "$ACKED"
fi
echo -n "warm cache: "
"$BIN" check "$WORK/log" "$ACKED"
