#!/usr/bin/env bash
# Opens the worker's asynqmon in a real (headless) Chromium and checks that it
# shows the qfpurge queue and the demo's dead letter; saves a screenshot.
#
#   scripts/browser-check.sh [screenshot.png]     (default docs/monitor.png)
#
# It builds the worker, starts it with --demo (embedded in-memory Redis and a
# fake Qianfan, so nothing else is needed) on free ports, waits for the
# dead letter of ID 404404, checks asynqmon's JSON API, then has Chromium
# render the archived-tasks page (JavaScript included) and checks the DOM.
# Then a page served on another origin tries, in Chromium, to pause the queue
# through the monitor; the check fails unless the monitor refused it.
# Needs: go, curl, and Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
shot="${1:-docs/monitor.png}"

chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$chrome" ]; then
  echo "browser-check: chromium is not installed (Debian/Ubuntu: apt-get install -y chromium)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
worker_pid=""
page_pid=""
cleanup() {
  if [ -n "$page_pid" ]; then
    kill "$page_pid" 2>/dev/null || true
  fi
  if [ -n "$worker_pid" ]; then
    kill "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "browser-check: FAIL: $*" >&2
  echo "--- worker stdout" >&2; cat "$tmp/out.log" >&2 || true
  echo "--- worker log (last 30 lines)" >&2; tail -n 30 "$tmp/err.log" >&2 || true
  exit 1
}

start=$(date +%s)
go build -o "$tmp/worker" ./cmd/worker

# Port 0 everywhere: the kernel picks free ports, the log says which.
env -u REDIS_URL -u QFPURGE_MONITOR_ADDR "$tmp/worker" --demo \
  --embedded-addr 127.0.0.1:0 --monitor-addr 127.0.0.1:0 \
  --log-format json >"$tmp/out.log" 2>"$tmp/err.log" &
worker_pid=$!

base=""
for _ in $(seq 1 100); do
  base="$(sed -n 's/.*"msg":"monitor listening".*"ui":"\(http:[^"]*\)\/monitoring\/".*/\1/p' "$tmp/err.log" | head -n 1)"
  [ -n "$base" ] && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited"
  sleep 0.1
done
[ -n "$base" ] || fail "the monitor did not start"
echo "browser-check: worker $worker_pid, monitor at $base/monitoring/"

# The demo prints its dead letter once the queue has drained.
for _ in $(seq 1 240); do
  grep -q "demo: dead letter" "$tmp/out.log" && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited"
  sleep 0.5
done
grep -q "demo: dead letter" "$tmp/out.log" || fail "no dead letter within 2 minutes"
grep "demo: dead letter" "$tmp/out.log"

# asynqmon's JSON API: the queue, and the archived task holding ID 404404.
curl -fsS "$base/monitoring/api/queues" | grep -q '"queue":"qfpurge"' || fail "the API does not list the qfpurge queue"
curl -fsS "$base/monitoring/api/queues/qfpurge/archived_tasks" | grep -q '404404' || fail "the API does not list the archived dead letter"
curl -fsS "$base/readyz" >/dev/null || fail "/readyz is not 200"
curl -fsS "$base/metrics" | grep -q '^qfpurge_dead_letters 1' || fail "/metrics does not count the dead letter"

page="$base/monitoring/queues/qfpurge?status=archived"
chrome_flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage
  --hide-scrollbars --virtual-time-budget=15000)

"$chrome" "${chrome_flags[@]}" --user-data-dir="$tmp/profile-dom" --dump-dom "$page" \
  >"$tmp/dom.html" 2>"$tmp/chrome.log" || fail "chromium --dump-dom failed: $(tail -n 5 "$tmp/chrome.log")"
grep -q 'qfpurge' "$tmp/dom.html" || fail "the rendered page does not show the qfpurge queue"
grep -q '404404' "$tmp/dom.html" || fail "the rendered archived-tasks page does not show ID 404404"
grep -q '500001' "$tmp/dom.html" || fail "the rendered archived-tasks page does not show the 500001 error"
echo "browser-check: Chromium rendered the qfpurge queue and the dead letter (ID 404404, 500001 param invalid)"

# Cross-site: a page on another origin (localhost on another port, as any web
# page the operator opens could be) tries to pause the queue with a form post
# and a fetch. The monitor must refuse both: the queue stays unpaused, and the
# log names the refused requests. A foreign Host header (DNS rebinding) is
# refused as well.
cat >"$tmp/page.go" <<'GO'
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	target := os.Args[1] + "/monitoring/api/queues/qfpurge:pause"
	page := `<!doctype html><title>not the monitor</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="post" action="` + target + `" target="sink"><input name="x" value="1"></form>
<p id="out">pending</p>
<script>
document.getElementById("f").submit();
fetch("` + target + `", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: ""})
  .then(() => { document.getElementById("out").textContent = "fetch sent"; })
  .catch(e => { document.getElementById("out").textContent = "fetch failed: " + e; });
</script>`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, page) }))
}
GO
go build -o "$tmp/page" "$tmp/page.go"
"$tmp/page" "$base" >"$tmp/page.port" &
page_pid=$!
for _ in $(seq 1 50); do [ -s "$tmp/page.port" ] && break; sleep 0.1; done
page_port="$(head -n 1 "$tmp/page.port")"
[ -n "$page_port" ] || fail "the cross-site page server did not start"
"$chrome" "${chrome_flags[@]}" --disable-quic --user-data-dir="$tmp/profile-xsite" --dump-dom "http://localhost:$page_port/" \
  >"$tmp/xsite.html" 2>>"$tmp/chrome.log" || fail "chromium on the cross-site page failed: $(tail -n 5 "$tmp/chrome.log")"
kill "$page_pid" 2>/dev/null || true
grep -q 'fetch sent' "$tmp/xsite.html" || fail "the cross-site page did not send its request: $(grep -o '<p id="out">[^<]*' "$tmp/xsite.html")"
sleep 0.5
curl -fsS "$base/monitoring/api/queues" | grep -q '"paused":false' || fail "a cross-site page paused the queue"
refused="$(grep 'cross-origin request refused' "$tmp/err.log" | grep -c 'qfpurge:pause' || true)"
[ "$refused" -ge 2 ] || fail "the monitor did not log both cross-site requests as refused (saw $refused)"
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' "$base/monitoring/api/queues")"
[ "$code" = 421 ] || fail "a request for Host evil.example answered $code, want 421"
echo "browser-check: Chromium on http://localhost:$page_port could not pause the queue (form and fetch refused); a foreign Host is refused"

mkdir -p "$(dirname "$shot")"
"$chrome" "${chrome_flags[@]}" --user-data-dir="$tmp/profile-shot" --window-size=1400,900 \
  --screenshot="$shot" "$page" >>"$tmp/chrome.log" 2>&1 || fail "chromium --screenshot failed"
[ -s "$shot" ] || fail "no screenshot written"
echo "browser-check: screenshot saved to $shot"
echo "browser-check: OK in $(( $(date +%s) - start ))s"
