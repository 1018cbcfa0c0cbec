#!/usr/bin/env bash
# Opens the monitor's status page (/status) in a real (headless) Chromium
# while the demo runs, pauses the fleet by hand and checks the page says so,
# and saves a screenshot of it.
#
#   scripts/status-check.sh [screenshot.png]     (default docs/status.png)
#
# It builds the worker and the pause command, starts the worker with --demo
# (embedded in-memory Redis and a fake Qianfan) on free ports, waits for the
# demo's dead letter, checks the page's counts, pauses the fleet with
# `pause set`, checks the banner in the DOM Chromium renders, takes the
# screenshot, lifts the pause and checks the page says deletions run again.
# Needs: go, curl, and Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
shot="${1:-docs/status.png}"

chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$chrome" ]; then
  echo "status-check: chromium is not installed (Debian/Ubuntu: apt-get install -y chromium)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
worker_pid=""
cleanup() {
  if [ -n "$worker_pid" ]; then
    kill "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "status-check: FAIL: $*" >&2
  echo "--- worker log (last 30 lines)" >&2; tail -n 30 "$tmp/err.log" >&2 || true
  exit 1
}

start=$(date +%s)
go build -o "$tmp/" ./cmd/worker ./cmd/qfpurge

env -u REDIS_URL -u QFPURGE_MONITOR_ADDR "$tmp/worker" --demo \
  --embedded-addr 127.0.0.1:0 --monitor-addr 127.0.0.1:0 \
  --log-format json >"$tmp/out.log" 2>"$tmp/err.log" &
worker_pid=$!

base="" redis_addr=""
for _ in $(seq 1 100); do
  base="$(sed -n 's/.*"msg":"monitor listening".*"ui":"\(http:[^"]*\)\/monitoring\/".*/\1/p' "$tmp/err.log" | head -n 1)"
  redis_addr="$(sed -n 's/.*embedded in-memory Redis on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/err.log" | head -n 1)"
  [ -n "$base" ] && [ -n "$redis_addr" ] && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited"
  sleep 0.1
done
[ -n "$base" ] && [ -n "$redis_addr" ] || fail "the monitor or the embedded Redis did not start"
echo "status-check: worker $worker_pid, status page at $base/status, Redis at $redis_addr"
pause=("$tmp/qfpurge" pause --redis-url "redis://$redis_addr/0")

for _ in $(seq 1 240); do
  grep -q "demo: dead letter" "$tmp/out.log" && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited"
  sleep 0.5
done
grep -q "demo: dead letter" "$tmp/out.log" || fail "no dead letter within 2 minutes"

curl -fsS "$base/status" >"$tmp/status.html" || fail "/status is not 200"
grep -q 'Deletions running.' "$tmp/status.html" || fail "the page does not say deletions run"
grep -A1 '>Dead letters<' "$tmp/status.html" | grep -q '<div class="n">1</div>' || fail "the page does not count the dead letter"
grep -q '<tr><td>dead</td><td class="num">1</td><td class="num">1</td></tr>' "$tmp/status.html" || fail "the page does not count the dead ID in the last hour"
deleted="$(sed -n 's/.*<tr><td>deleted<\/td><td class="num">\([0-9]*\)<\/td>.*/\1/p' "$tmp/status.html")"
[ "${deleted:-0}" -ge 50 ] || fail "the page counts ${deleted:-no} deleted IDs in the last hour, want the demo's 50"
echo "status-check: the page counts $deleted deleted and 1 dead ID in the last hour, 1 dead letter"

reason="paused by hand from scripts/status-check.sh <to show the banner>"
"${pause[@]}" set "$reason" >/dev/null || fail "pause set failed"
chrome_flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage
  --hide-scrollbars --virtual-time-budget=5000)
"$chrome" "${chrome_flags[@]}" --user-data-dir="$tmp/profile-dom" --dump-dom "$base/status" \
  >"$tmp/dom.html" 2>"$tmp/chrome.log" || fail "chromium --dump-dom failed: $(tail -n 5 "$tmp/chrome.log")"
grep -q '<b>Deletions paused</b>' "$tmp/dom.html" || fail "the rendered page shows no pause banner"
grep -q 'paused by hand from scripts/status-check.sh &lt;to show the banner&gt;' "$tmp/dom.html" || fail "the rendered page does not show the pause's reason, escaped"
echo "status-check: Chromium rendered the pause banner with its reason"

mkdir -p "$(dirname "$shot")"
"$chrome" "${chrome_flags[@]}" --user-data-dir="$tmp/profile-shot" --window-size=1200,1000 \
  --screenshot="$shot" "$base/status" >>"$tmp/chrome.log" 2>&1 || fail "chromium --screenshot failed"
[ -s "$shot" ] || fail "no screenshot written"
echo "status-check: screenshot saved to $shot"

"${pause[@]}" lift >/dev/null || fail "pause lift failed"
curl -fsS "$base/status" | grep -q 'Deletions running.' || fail "the page still shows a pause after pause lift"
echo "status-check: OK in $(( $(date +%s) - start ))s"
