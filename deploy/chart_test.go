package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/qfpurge/qfpurge/internal/schedule"
)

// manifests are one rendering of the chart, decoded.
type manifests struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	secrets     []corev1.Secret
	configMaps  []corev1.ConfigMap
	pdbs        []policyv1.PodDisruptionBudget
}

// decode splits helm's output into documents and decodes each strictly
// (an unknown field is an error) into the API type its kind names.
func decode(t *testing.T, out []byte) manifests {
	t.Helper()
	var m manifests
	docs := regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1)
	for _, doc := range docs {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			m.deployments = append(m.deployments, strict[appsv1.Deployment](doc, &err))
		case "v1 Service":
			m.services = append(m.services, strict[corev1.Service](doc, &err))
		case "v1 Secret":
			m.secrets = append(m.secrets, strict[corev1.Secret](doc, &err))
		case "v1 ConfigMap":
			m.configMaps = append(m.configMaps, strict[corev1.ConfigMap](doc, &err))
		case "policy/v1 PodDisruptionBudget":
			m.pdbs = append(m.pdbs, strict[policyv1.PodDisruptionBudget](doc, &err))
		default:
			t.Fatalf("unexpected manifest %s %s:\n%s", head.APIVersion, head.Kind, doc)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", head.Kind, err, doc)
		}
	}
	return m
}

func strict[T any](doc string, err *error) T {
	var v T
	*err = yaml.UnmarshalStrict([]byte(doc), &v)
	return v
}

func stripComments(doc string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestStrictDecodingCatchesUnknownFields(t *testing.T) {
	var err error
	strict[appsv1.Deployment]("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n", &err)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded without error: %v", err)
	}
}

// worker is the one container of the one Deployment.
func worker(t *testing.T, m manifests) (appsv1.Deployment, corev1.Container) {
	t.Helper()
	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(m.deployments))
	}
	d := m.deployments[0]
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// checkPod holds for every rendering: probes on the monitor port, the
// restricted security context, secrets only by reference, selectors that
// match.
func checkPod(t *testing.T, m manifests, monitorPort int32) {
	t.Helper()
	d, c := worker(t, m)
	pod := d.Spec.Template.Spec

	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Fatalf("%s probe: missing or not HTTP", name)
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "monitor" {
			t.Errorf("%s probe: GET %s on port %s, want %s on monitor", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")
	var monitor *corev1.ContainerPort
	for i, p := range c.Ports {
		if p.Name == "monitor" {
			monitor = &c.Ports[i]
		}
	}
	if monitor == nil || monitor.ContainerPort != monitorPort {
		t.Errorf("container port monitor = %+v, want %d", monitor, monitorPort)
	}
	if want := fmt.Sprintf("--monitor-addr=0.0.0.0:%d", monitorPort); !slices.Contains(c.Args, want) {
		t.Errorf("args %q lack %s: the probes reach the monitor only beyond loopback", c.Args, want)
	}

	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext is not restricted: %+v", sc)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext is not restricted: %+v", psc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not use")
	}
	mountedTmp := false
	for _, vm := range c.VolumeMounts {
		mountedTmp = mountedTmp || vm.MountPath == "/tmp"
	}
	if !mountedTmp {
		t.Error("no writable /tmp under a read-only root filesystem")
	}

	// Secrets reach the container by reference only.
	for _, e := range c.Env {
		secretish := strings.Contains(e.Name, "KEY") || strings.Contains(e.Name, "TOKEN") ||
			strings.Contains(e.Name, "PASSWORD") || e.Name == "REDIS_URL" || e.Name == "QFPURGE_MONITOR_USER"
		if secretish && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s is not taken from a Secret", e.Name)
		}
	}

	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--shutdown-timeout="); ok {
			if st, err := time.ParseDuration(v); err != nil || st >= grace {
				t.Errorf("--shutdown-timeout %s is not below the pod's grace %s: running batches would be killed", v, grace)
			}
		}
	}

	labels := d.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(d.Spec.Selector.MatchLabels) {
		t.Errorf("the Deployment's selector %v does not match its pods %v", d.Spec.Selector.MatchLabels, labels)
	}
	for _, s := range m.services {
		if !matches(s.Spec.Selector) {
			t.Errorf("Service %s selects %v, not the worker pods", s.Name, s.Spec.Selector)
		}
		if !s.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s drops unready pods: every worker is unready while the fleet is paused", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
				t.Errorf("Service %s targets port %s, which the container does not name", s.Name, p.TargetPort.String())
			}
		}
	}
	for _, p := range m.pdbs {
		if !matches(p.Spec.Selector.MatchLabels) {
			t.Errorf("the PodDisruptionBudget selects %v, not the worker pods", p.Spec.Selector.MatchLabels)
		}
		if p.Spec.UnhealthyPodEvictionPolicy == nil || *p.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
			t.Error("the PodDisruptionBudget would keep unready (paused) workers from being evicted")
		}
	}
}

// secretRef returns the Secret and key env name is taken from.
func secretRef(t *testing.T, c corev1.Container, name string) (string, string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("env %s is not from a Secret", name)
			}
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	t.Fatalf("env %s is not set", name)
	return "", ""
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestChartMinimal(t *testing.T) {
	m := decode(t, rendered(t, "minimal"))
	checkPod(t, m, 8080)
	d, c := worker(t, m)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want the default 2", *d.Spec.Replicas)
	}
	if !slices.Equal(c.Command, []string{"qfpurge", "worker"}) {
		t.Errorf("command %q, want the default [qfpurge worker]", c.Command)
	}
	for env, key := range map[string]string{"QIANFAN_ACCESS_KEY": "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY": "QIANFAN_SECRET_KEY",
		"REDIS_URL": "REDIS_URL", "QFPURGE_MONITOR_TOKEN": "QFPURGE_MONITOR_TOKEN"} {
		if s, k := secretRef(t, c, env); s != "qfpurge-credentials" || k != key {
			t.Errorf("%s from %s/%s, want qfpurge-credentials/%s", env, s, k, key)
		}
	}
	if _, ok := envValue(c, "QFPURGE_API_TOKENS"); ok || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--api-addr") }) {
		t.Error("the API is on by default")
	}
	if _, ok := envValue(c, "QIANFAN_READ_ACCESS_KEY"); ok || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--read-qps") }) {
		t.Error("the read-only pair is on by default")
	}
	if len(m.secrets) != 0 || len(m.configMaps) != 0 {
		t.Errorf("%d Secrets and %d ConfigMaps rendered with an existing Secret and no schedule, want none", len(m.secrets), len(m.configMaps))
	}
	if len(m.services) != 1 || m.services[0].Name != "qfpurge-monitor" || len(m.pdbs) != 1 {
		t.Fatalf("want the monitor Service and a PodDisruptionBudget, got %d Services, %d PDBs", len(m.services), len(m.pdbs))
	}
	for _, name := range []string{"QFPURGE_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if _, ok := envValue(c, name); ok {
			t.Errorf("tracing is off by default, yet %s is set", name)
		}
	}
	hosts, _ := envValue(c, "QFPURGE_MONITOR_HOSTS")
	if !strings.Contains(hosts, "qfpurge-monitor.qfpurge.svc.cluster.local") {
		t.Errorf("QFPURGE_MONITOR_HOSTS %q lacks the monitor Service's name: the status page through it would answer 421", hosts)
	}
	checkWorkerFlags(t, c)
}

func TestChartAllOptions(t *testing.T) {
	m := decode(t, rendered(t, "all"))
	checkPod(t, m, 9090)
	d, c := worker(t, m)
	if *d.Spec.Replicas != 3 || c.Image != "registry.example.com/qfpurge:1.2.3" || !slices.Equal(c.Command, []string{"worker"}) {
		t.Errorf("replicas %d, image %s, command %q: values not applied", *d.Spec.Replicas, c.Image, c.Command)
	}
	for _, want := range []string{"--monitor-readonly", "--api-addr=0.0.0.0:9091", "--api-max-body=2097152", "--qps=50",
		"--schedule=/etc/qfpurge/schedule.yaml", "--schedule-sync=30s", "--qianfan-api=v1",
		"--qianfan-base-url=https://qianfan.example.com", "--inventory-every=1h", "--inventory-versions", "--read-qps=20"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}

	// Inline credentials go to the chart's Secret; named ones stay where they are.
	refs := map[string][2]string{
		"QIANFAN_ACCESS_KEY":       {"qfpurge", "QIANFAN_ACCESS_KEY"},
		"QIANFAN_SECRET_KEY":       {"qfpurge", "QIANFAN_SECRET_KEY"},
		"QIANFAN_READ_ACCESS_KEY":  {"qfpurge", "QIANFAN_READ_ACCESS_KEY"},
		"QIANFAN_READ_SECRET_KEY":  {"qfpurge", "QIANFAN_READ_SECRET_KEY"},
		"QFPURGE_MONITOR_TOKEN":    {"qfpurge", "QFPURGE_MONITOR_TOKEN"},
		"QFPURGE_MONITOR_USER":     {"qfpurge", "QFPURGE_MONITOR_USER"},
		"QFPURGE_MONITOR_PASSWORD": {"qfpurge", "QFPURGE_MONITOR_PASSWORD"},
		"REDIS_URL":                {"redis-url", "url"},
		"QFPURGE_API_TOKENS":       {"qfpurge-api", "QFPURGE_API_TOKENS"},
	}
	for env, want := range refs {
		if s, k := secretRef(t, c, env); [2]string{s, k} != want {
			t.Errorf("%s from %s/%s, want %s/%s", env, s, k, want[0], want[1])
		}
	}
	if len(m.secrets) != 1 {
		t.Fatalf("%d Secrets, want the chart's one", len(m.secrets))
	}
	sec := m.secrets[0]
	var keys []string
	for k := range sec.StringData {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"QFPURGE_MONITOR_PASSWORD", "QFPURGE_MONITOR_TOKEN", "QFPURGE_MONITOR_USER", "QIANFAN_ACCESS_KEY", "QIANFAN_READ_ACCESS_KEY", "QIANFAN_READ_SECRET_KEY", "QIANFAN_SECRET_KEY"}; !slices.Equal(keys, want) {
		t.Errorf("the chart's Secret holds %q, want %q", keys, want)
	}
	if sec.StringData["QIANFAN_SECRET_KEY"] != "example-secret-key" {
		t.Error("the chart's Secret does not hold the inline secret key")
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9090" || a["example.com/owner"] != "ops" {
		t.Errorf("pod annotations %v", a)
	}
	if d.Spec.Template.Annotations["checksum/secret"] == "" {
		t.Error("no checksum of the chart's Secret on the pods: a changed key would not restart them")
	}

	hosts, _ := envValue(c, "QFPURGE_MONITOR_HOSTS")
	if !strings.HasPrefix(hosts, "qfpurge.example.com,qfpurge-monitor,") {
		t.Errorf("QFPURGE_MONITOR_HOSTS %q", hosts)
	}
	// Tracing: the endpoint and name as values, the collector's headers
	// (they may hold a token) from a Secret.
	if v, _ := envValue(c, "QFPURGE_OTLP_ENDPOINT"); v != "http://otel-collector.observability:4318" {
		t.Errorf("QFPURGE_OTLP_ENDPOINT %q", v)
	}
	if v, _ := envValue(c, "OTEL_SERVICE_NAME"); v != "qfpurge-example" {
		t.Errorf("OTEL_SERVICE_NAME %q", v)
	}
	if name, key := secretRef(t, c, "OTEL_EXPORTER_OTLP_HEADERS"); name != "otlp-headers" || key != "headers" {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS from %s/%s", name, key)
	}

	// The schedule: a ConfigMap mounted as a directory, and a valid schedule.
	if len(m.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps, want the schedule's", len(m.configMaps))
	}
	cm := m.configMaps[0]
	dir := t.TempDir()
	for name, text := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := schedule.Load(filepath.Join(dir, "schedule.yaml"))
	if err != nil || len(entries) != 1 {
		t.Errorf("the ConfigMap's schedule: %d entries, %v", len(entries), err)
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/etc/qfpurge" {
			mounted = vm.SubPath == "" && vm.ReadOnly
		}
	}
	if !mounted {
		t.Error("the schedule is not mounted read-only as a directory on /etc/qfpurge (a subPath mount never sees edits)")
	}
	vols := d.Spec.Template.Spec.Volumes
	if !slices.ContainsFunc(vols, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == cm.Name }) {
		t.Errorf("no volume of ConfigMap %s", cm.Name)
	}

	if len(m.services) != 2 {
		t.Fatalf("%d Services, want monitor and API", len(m.services))
	}
	for _, s := range m.services {
		switch s.Name {
		case "qfpurge-monitor":
			if s.Spec.Type != corev1.ServiceTypeNodePort || s.Spec.Ports[0].Port != 80 {
				t.Errorf("monitor Service %s port %d", s.Spec.Type, s.Spec.Ports[0].Port)
			}
		case "qfpurge-api":
			if s.Spec.Ports[0].Port != 443 || s.Spec.Ports[0].TargetPort.String() != "api" {
				t.Errorf("API Service port %d → %s", s.Spec.Ports[0].Port, s.Spec.Ports[0].TargetPort.String())
			}
		default:
			t.Errorf("unexpected Service %s", s.Name)
		}
	}
	if m.pdbs[0].Spec.MaxUnavailable.IntValue() != 2 {
		t.Errorf("PDB maxUnavailable %s, want 2", m.pdbs[0].Spec.MaxUnavailable.String())
	}
	checkWorkerFlags(t, c)
}

// TestChartRefusesMissingCredentials: the chart's defaults name no Secret,
// and rendering says what to set rather than making a worker that cannot
// start.
func TestChartRefusesMissingCredentials(t *testing.T) {
	_, err := helmTemplate(t, "")
	if err == nil || !strings.Contains(err.Error(), "set existingSecret") {
		t.Fatalf("helm template without credentials: %v, want a refusal naming existingSecret", err)
	}
}

// checkWorkerFlags runs the worker's own flag parsing over the chart's
// arguments (followed by -h, so it stops there): every flag must exist and
// every value parse. Every variable the chart sets must be one the
// worker's -h names.
func checkWorkerFlags(t *testing.T, c corev1.Container) {
	t.Helper()
	bin, sub := workerBinary(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, append(append(sub, c.Args...), "-h")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // -h exits non-zero in some flag sets; the text decides
	help := out.String()
	if !strings.Contains(help, "-monitor-addr") {
		t.Fatalf("the worker's -h does not list its flags:\n%s", help)
	}
	for l := range strings.SplitSeq(help, "\n") {
		if strings.Contains(l, "invalid value") || strings.Contains(l, "flag provided but not defined") || strings.Contains(l, "bad flag syntax") ||
			strings.Contains(l, "unknown flag") || strings.Contains(l, "invalid argument") {
			t.Errorf("the worker refuses the chart's arguments: %s", l)
		}
	}
	for _, e := range c.Env {
		// QFPURGE_<FLAG> sets any flag the help lists.
		flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.Name, "QFPURGE_")), "_", "-") + " "
		if strings.HasPrefix(e.Name, "QFPURGE_") && strings.Contains(help, "QFPURGE_<FLAG>") && strings.Contains(help, flag) {
			continue
		}
		if e.Name != "TZ" && !strings.Contains(help, e.Name) {
			t.Errorf("the chart sets %s, which the worker's -h does not name", e.Name)
		}
	}
}

var workerBin struct {
	path string
	sub  []string
	dir  string
}

// workerBinary builds the worker once: the single qfpurge binary's worker
// command where it exists, else cmd/worker.
func workerBinary(t *testing.T) (string, []string) {
	t.Helper()
	if workerBin.path != "" {
		return workerBin.path, workerBin.sub
	}
	pkg, sub := "../cmd/worker", []string(nil)
	if _, err := os.Stat("../cmd/qfpurge"); err == nil {
		pkg, sub = "../cmd/qfpurge", []string{"worker"}
	}
	dir, err := os.MkdirTemp("", "deploy-test")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	workerBin.path, workerBin.sub, workerBin.dir = bin, sub, dir
	return bin, sub
}

func TestMain(m *testing.M) {
	code := m.Run()
	if workerBin.dir != "" {
		os.RemoveAll(workerBin.dir)
	}
	os.Exit(code)
}
