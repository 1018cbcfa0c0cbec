package deploy_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const chartDir = "helm/qfpurge"

// helmMissing says why the chart's tests did not run.
const helmMissing = "helm is not installed, so the chart was not rendered; run scripts/kit-check.sh, " +
	"which installs it (go install helm.sh/helm/v4/cmd/helm@v4.3.2)"

// helmBinary finds helm on PATH or where `go install` puts it. Without it the
// test is skipped, except under CI (CI=true), where it fails.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	for _, dir := range []string{goEnv("GOBIN"), filepath.Join(goEnv("GOPATH"), "bin")} {
		p := filepath.Join(dir, "helm")
		if dir != "" && dir != "bin" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(helmMissing)
	}
	t.Skip(helmMissing)
	return ""
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// helmTemplate renders the chart with one of ci/*-values.yaml ("" for the
// chart's defaults alone).
func helmTemplate(t *testing.T, values string) ([]byte, error) {
	t.Helper()
	args := []string{"template", "qfpurge", chartDir, "--namespace", "qfpurge"}
	if values != "" {
		args = append(args, "-f", filepath.Join(chartDir, "ci", values+"-values.yaml"))
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// rendered returns the manifests scripts/kit-check.sh wrote
// ($QFPURGE_KIT_RENDERED/<values>.yaml), or renders them with helm.
func rendered(t *testing.T, values string) []byte {
	t.Helper()
	if dir := os.Getenv("QFPURGE_KIT_RENDERED"); dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, values+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := helmTemplate(t, values)
	if err != nil {
		t.Fatalf("helm template with ci/%s-values.yaml: %v", values, err)
	}
	return b
}
