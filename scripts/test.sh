#!/usr/bin/env bash
# Runs every test. Tests that claim Redis behaviour start their own
# redis-server on a free loopback port; without redis-server they are
# skipped (and under CI=true they fail), so say so plainly up front.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  cat >&2 <<'MSG'
*** redis-server is not installed: the tests against a real Redis (the pipeline,
*** crash recovery, producer, dead letters, HTTP API, scheduler, benchmarks' chaos
*** test) will be SKIPPED and prove nothing. Install it and run this again:
***   Debian/Ubuntu: sudo apt-get install redis-server     macOS: brew install redis
MSG
  if [ "${CI:-}" = "true" ]; then
    echo "CI: a missing redis-server is a failure, not a skip." >&2
    exit 1
  fi
fi

go test -race -count=1 -timeout 20m "$@" ./...
status=$?

if ! command -v redis-server >/dev/null 2>&1; then
  echo "*** reminder: Redis-backed tests were skipped (no redis-server)." >&2
fi
exit $status
