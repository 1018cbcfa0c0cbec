package qfpurge_test

import (
	"os/exec"
	"strings"
	"testing"
)

// floors are the README's layout table, lowest first: a package may import
// from its own floor and the ones below, never from above.
var floors = [][]string{
	{"internal/modelid", "internal/retry", "internal/asynqlayout", "internal/redisconn", "internal/cli", "internal/authtoken", "internal/redistest", "internal/maintenance", "internal/tracing"},
	{"internal/qianfan", "internal/qianfan/qianfantest", "internal/fleet"},
	{"internal/ledger", "internal/inventory", "internal/inuse", "internal/deadletter"},
	{"internal/tasks", "internal/enqueue"},
	{"internal/policy", "internal/policy/policytest"},
	{"internal/httpapi", "internal/monitor", "internal/schedule"},
	{"internal/worker", "internal/worker/workertest"},
	{"producer"},
	{"cmd/"},
	{"deploy"},
}

const module = "github.com/qfpurge/qfpurge/"

func floorOf(pkg string) int {
	rel := strings.TrimPrefix(pkg, module)
	for i, f := range floors {
		for _, p := range f {
			if rel == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p)) {
				return i
			}
		}
	}
	return -1
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		if pkg == strings.TrimSuffix(module, "/") {
			continue
		}
		from := floorOf(pkg)
		if from < 0 {
			t.Errorf("%s is on no floor: add it to the README's Layout table and to floors", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if to := floorOf(imp); to > from {
				t.Errorf("%s (floor %d) imports %s (floor %d), a higher floor", pkg, from, imp, to)
			}
		}
	}
	deps, err := exec.Command("go", "list", "-deps", "./internal/...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for d := range strings.SplitSeq(string(deps), "\n") {
		if d == module+"producer" {
			t.Error("an internal package depends on package producer")
		}
	}
}
