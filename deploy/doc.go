// Package deploy holds the operators' kit, checked by this package's tests:
// the Helm chart (helm/qfpurge), Prometheus alerting rules and their unit
// tests (prometheus/), and a Grafana dashboard (grafana/). The tests decode
// the chart's rendered manifests strictly into Kubernetes' API types, run the
// rules' unit tests with Prometheus's own rule manager, and check that every
// metric the rules and the dashboard name is one the worker exports.
// scripts/kit-check.sh installs helm and runs them.
package deploy
