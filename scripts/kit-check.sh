#!/usr/bin/env bash
# Checks the operators' kit under deploy/: the Helm chart lints and renders
# (with the least values, and with every option on), every rendered manifest
# decodes strictly into Kubernetes' own API types, the chart refuses to
# render without credentials, and the Prometheus rules, their unit tests and
# the Grafana dashboard agree with the metrics the worker exports.
#
#   scripts/kit-check.sh
#
# Installs helm with `go install` when it is missing (about two minutes on
# two cores; it lands in $(go env GOPATH)/bin, where the Go tests look too).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
chart=deploy/helm/qfpurge
helm_version=v4.3.2

gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if ! command -v helm >/dev/null 2>&1; then
  echo "kit-check: installing helm $helm_version with go install (about two minutes)"
  GOBIN="$gobin" go install "helm.sh/helm/v4/cmd/helm@$helm_version"
fi
helm version --short

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for v in minimal all; do
  echo "kit-check: helm lint --strict ($v values)"
  helm lint --strict "$chart" -f "$chart/ci/$v-values.yaml"
  helm template qfpurge "$chart" --namespace qfpurge -f "$chart/ci/$v-values.yaml" >"$out/$v.yaml"
  echo "kit-check: rendered $(grep -c '^kind:' "$out/$v.yaml") manifests ($v values)"
done

# Without credentials the chart must refuse to render, naming what to set.
if helm template qfpurge "$chart" >"$out/none.yaml" 2>"$out/none.err"; then
  echo "kit-check: FAIL: the chart rendered without any credentials" >&2
  exit 1
fi
grep -q 'set existingSecret' "$out/none.err" || { echo "kit-check: FAIL: unexpected error: $(cat "$out/none.err")" >&2; exit 1; }
echo "kit-check: without credentials helm template refuses: $(grep -o 'qfpurge: [^"]*' "$out/none.err" | head -n 1)"

echo "kit-check: go test ./deploy (strict decoding, alert rules and their tests, dashboard)"
QFPURGE_KIT_RENDERED="$out" go test -count=1 ./deploy/

echo "kit-check: OK in $(( $(date +%s) - start ))s"
