#!/usr/bin/env bash
# The console in a real browser: Debian's chromium driven by playwright-core (never a downloaded
# browser), against the real `sekisho` binary on loopback. Installs what it needs, then runs
# console.spec.mjs with Node's test runner. Screenshots go to $SEKISHO_SCREENSHOTS or a temp directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Japanese text in the screenshots needs a CJK font.
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=ja 2>/dev/null)" ]; then need+=(fonts-noto-cjk); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

echo "== npm dependencies (playwright-core)"
cd "$here"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

if [ -z "${SEKISHO_BIN:-}" ]; then
  echo "== cargo build --bin sekisho"
  (cd "$root" && cargo build --locked --bin sekisho)
  export SEKISHO_BIN="$root/target/debug/sekisho"
fi

echo "== console in chromium"
node --test console.spec.mjs
