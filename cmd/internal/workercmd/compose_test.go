package workercmd

// No Docker engine runs on our machines, so this test reads
// docker-compose.yml, .env.example and the Dockerfile and checks them against
// the real binaries: the worker's own flag set and validation (parseFlags),
// the other commands' -h output and sources.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/schedule"
)

const repoRoot = "../../.."

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Profiles    []string          `yaml:"profiles"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	Restart         string `yaml:"restart"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

// ours reports whether the service runs the qfpurge image.
func (s composeService) ours() bool { return s.Build != nil || strings.HasPrefix(s.Image, "qfpurge") }

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a typo in a key we read fails here
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// loadEnvExample returns the variables .env.example sets.
func loadEnvExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			t.Errorf(".env.example:%d: not KEY=VALUE: %q", line, text)
			continue
		}
		env[k] = v
	}
	return env
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves ${VAR}, ${VAR:-default}, ${VAR-default} and
// ${VAR:?message} as docker compose does, recording each variable used.
func interpolate(t *testing.T, s string, env map[string]string, used map[string]bool) string {
	t.Helper()
	return varRE.ReplaceAllStringFunc(s, func(m string) string {
		g := varRE.FindStringSubmatch(m)
		name, op, arg := g[1], g[2], g[3]
		used[name] = true
		v, set := env[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?", "?":
			if v == "" {
				t.Errorf("%s is required (%s) but .env.example leaves it empty", name, arg)
			}
		}
		return v
	})
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	envExample := loadEnvExample(t)
	used := map[string]bool{}

	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	t.Run("redis", func(t *testing.T) {
		if !strings.HasPrefix(redis.Image, "redis:7") {
			t.Errorf("redis image %q, want redis:7", redis.Image)
		}
		if i := slices.Index(redis.Command, "--appendonly"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "yes" {
			t.Errorf("redis command %q lacks --appendonly yes", redis.Command)
		}
		if !slices.Contains(redis.Healthcheck.Test, "redis-cli") || !slices.Contains(redis.Healthcheck.Test, "ping") {
			t.Errorf("redis healthcheck %q, want redis-cli ping", redis.Healthcheck.Test)
		}
		if !slices.ContainsFunc(redis.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
			t.Errorf("redis volumes %q: no volume on /data, so the append-only file is lost with the container", redis.Volumes)
		}
	})

	flagsOf := map[string]map[string]bool{} // command → its flags, for non-worker commands
	ranWorker, demo := 0, map[string]bool{}
	for name, svc := range c.Services {
		if !svc.ours() {
			continue
		}
		if slices.Contains(svc.Profiles, "demo") {
			demo[name] = true
		}
		t.Run(name, func(t *testing.T) {
			if len(svc.Entrypoint) > 0 {
				t.Fatalf("entrypoint %q: the image's CMD names the binary; use command", svc.Entrypoint)
			}
			if len(svc.Command) == 0 {
				t.Fatal("no command: name the binary (qfpurge or fakeqianfan)")
			}
			env := map[string]string{}
			for k, v := range svc.Environment {
				env[k] = interpolate(t, v, envExample, used)
			}
			args := make([]string, len(svc.Command))
			for i, a := range svc.Command {
				args[i] = interpolate(t, a, envExample, used)
			}
			for _, v := range svc.Volumes {
				checkBindMount(t, interpolate(t, v, envExample, used))
			}
			for _, p := range svc.Ports {
				interpolate(t, p, envExample, used)
			}
			bin := args[0]
			if _, err := os.Stat(filepath.Join(repoRoot, "cmd", bin, "main.go")); err != nil {
				t.Fatalf("command %q: no cmd/%s/main.go", bin, bin)
			}
			if bin == "qfpurge" && len(args) < 2 {
				t.Fatal("qfpurge without a subcommand")
			}
			if bin != "qfpurge" || args[1] != "worker" {
				cmdline := args[:1]
				if bin == "qfpurge" {
					cmdline = args[:2]
				}
				key := strings.Join(cmdline, " ")
				fl := flagsOf[key]
				if fl == nil {
					fl = commandFlags(t, cmdline)
					flagsOf[key] = fl
				}
				for _, a := range args[len(cmdline):] {
					if f, ok := flagName(a); ok && !fl[f] {
						t.Errorf("%s has no flag -%s (it has %v)", key, f, slices.Sorted(maps.Keys(fl)))
					}
				}
				read := envReadBySource(t, bin)
				for k := range env {
					if !read[k] {
						t.Errorf("%s does not read environment variable %s", key, k)
					}
				}
				return
			}

			ranWorker++
			read := map[string]bool{}
			getenv := func(k string) string { read[k] = true; return env[k] }
			var usage bytes.Buffer
			o, err := parseFlags(args[2:], getenv, &usage)
			if err != nil {
				t.Fatalf("worker rejects the compose command %q: %v\n%s", args[2:], err, usage.String())
			}
			cfg := o.worker
			if err := cfg.Validate(); err != nil {
				t.Errorf("worker config from compose is invalid: %v", err)
			}
			for k := range env {
				if !read[k] {
					t.Errorf("the worker does not read environment variable %s", k)
				}
			}
			if u, err := url.Parse(o.redisURL); err != nil || u.Hostname() == "" || c.Services[u.Hostname()].Image == "" {
				t.Errorf("REDIS_URL %q does not point at a compose service", o.redisURL)
			} else if c.Services[name].DependsOn[u.Hostname()].Condition != "service_healthy" {
				t.Errorf("depends_on %s must wait for service_healthy", u.Hostname())
			}
			if cfg.Monitor.Addr != "" {
				loop, err := monitor.IsLoopback(cfg.Monitor.Addr)
				if err != nil {
					t.Errorf("--monitor-addr %q: %v", cfg.Monitor.Addr, err)
				}
				if !loop && cfg.Monitor.Token == "" && (cfg.Monitor.User == "" || cfg.Monitor.Password == "") {
					t.Errorf("monitor on %s (beyond loopback) without credentials: the worker would refuse to start", cfg.Monitor.Addr)
				}
			}
			if cfg.SecretKey != "" && cfg.SecretKey != qianfantest.DefaultSecretKey && svc.Environment["QIANFAN_SECRET_KEY"] == cfg.SecretKey {
				t.Errorf("QIANFAN_SECRET_KEY is written into docker-compose.yml; take it from the environment")
			}
			if base, err := url.Parse(cfg.BaseURL); err == nil {
				if fake, ok := c.Services[base.Hostname()]; ok {
					if i := slices.Index(fake.Command, "-addr"); i < 0 || !strings.HasSuffix(fake.Command[i+1], ":"+base.Port()) {
						t.Errorf("--qianfan-base-url %s: service %s does not listen on port %s (%q)", cfg.BaseURL, base.Hostname(), base.Port(), fake.Command)
					}
					// An open-world fake answers no listing, so the in-use
					// check cannot tell and every batch waits for good.
					if !slices.Contains(fake.Command, "-models") && !slices.Contains(fake.Command, "-inventory") {
						t.Errorf("service %s has no inventory (-models or -inventory): the worker's in-use check needs complete listings (%q)", base.Hostname(), fake.Command)
					}
				}
			}
			if svc.StopGracePeriod != "" {
				grace, err := time.ParseDuration(svc.StopGracePeriod)
				if err != nil || grace <= cfg.ShutdownTimeout {
					t.Errorf("stop_grace_period %s must be longer than --shutdown-timeout %s, or Docker kills running batches", svc.StopGracePeriod, cfg.ShutdownTimeout)
				}
			}
			if cfg.Schedule != "" {
				host, ok := hostPath(svc.Volumes, cfg.Schedule, envExample, used)
				if !ok {
					t.Errorf("--schedule %s is not inside a bind mount", cfg.Schedule)
				} else if _, err := schedule.Load(host); err != nil {
					t.Errorf("--schedule %s (%s on the host): %v", cfg.Schedule, host, err)
				}
			}
		})
	}
	if ranWorker == 0 {
		t.Error("no service runs the worker")
	}
	for _, want := range []string{"fakeqianfan", "demo-worker"} {
		if !demo[want] {
			t.Errorf("service %s is not under the demo profile", want)
		}
	}
	for v := range used {
		if _, ok := envExample[v]; !ok {
			t.Errorf("docker-compose.yml uses ${%s}, which .env.example does not document", v)
		}
	}
}

// checkBindMount checks that the host side of a bind mount exists.
func checkBindMount(t *testing.T, v string) {
	t.Helper()
	host, _, ok := strings.Cut(v, ":")
	if !ok || !(strings.HasPrefix(host, ".") || strings.HasPrefix(host, "/")) {
		return // a named volume
	}
	if _, err := os.Stat(filepath.Join(repoRoot, host)); err != nil {
		t.Errorf("bind mount %q: %v", v, err)
	}
}

// hostPath maps a path inside the container to the host through the
// service's bind mounts.
func hostPath(volumes []string, inContainer string, env map[string]string, used map[string]bool) (string, bool) {
	for _, v := range volumes {
		v = varRE.ReplaceAllStringFunc(v, func(m string) string {
			g := varRE.FindStringSubmatch(m)
			used[g[1]] = true
			if val := env[g[1]]; val != "" {
				return val
			}
			return g[3]
		})
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		if rel, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(parts[1], "/")+"/"); ok {
			return filepath.Join(repoRoot, parts[0], filepath.FromSlash(rel)), true
		}
	}
	return "", false
}

var helpFlagRE = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z0-9], )?--?([A-Za-z0-9][A-Za-z0-9_-]*)`)

// commandFlags builds cmd/<cmdline[0]> and reads the flags of cmdline (a
// binary and, for qfpurge, its subcommand) from -h.
func commandFlags(t *testing.T, cmdline []string) map[string]bool {
	t.Helper()
	bin := cmdline[0]
	exe := filepath.Join(t.TempDir(), bin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", exe, "./cmd/"+bin)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", bin, err, out)
	}
	var out bytes.Buffer
	h := exec.CommandContext(ctx, exe, append(slices.Clone(cmdline[1:]), "-h")...)
	h.Stdout, h.Stderr = &out, &out
	_ = h.Run() // flag's -h exits 0 or 2
	fl := map[string]bool{}
	for _, m := range helpFlagRE.FindAllStringSubmatch(out.String(), -1) {
		fl[m[1]] = true
	}
	if len(fl) == 0 {
		t.Fatalf("%s -h listed no flags:\n%s", strings.Join(cmdline, " "), out.String())
	}
	return fl
}

// flagName returns the name of a -flag or --flag argument.
func flagName(a string) (string, bool) {
	if !strings.HasPrefix(a, "-") || a == "-" || isNumber(a) {
		return "", false
	}
	name := strings.TrimLeft(a, "-")
	name, _, _ = strings.Cut(name, "=")
	return name, name != ""
}

func isNumber(s string) bool {
	return strings.Trim(s, "-0123456789.") == "" && strings.ContainsAny(s, "0123456789")
}

var getenvRE = regexp.MustCompile(`(?i)getenv\("([A-Z0-9_]+)"\)`)

// envReadBySource lists the variables cmd/<bin> reads with getenv("NAME").
func envReadBySource(t *testing.T, bin string) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "cmd", bin, "*.go"))
	read := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range getenvRE.FindAllSubmatch(b, -1) {
			read[string(m[1])] = true
		}
	}
	return read
}

// TestDockerfile checks that the Dockerfile builds every command compose
// runs, from paths that exist, statically, into non-root images, and that
// the default image holds qfpurge alone.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	type stage struct {
		name, from, user string
		built, copied    []string // binaries built here; files copied in from other stages
	}
	var stages []*stage
	byName := map[string]*stage{}
	args := map[string]bool{} // build arguments the Dockerfile declares
	for line := range strings.Lines(df) {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "FROM "):
			st := &stage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
				byName[st.name] = st
			}
			if base := byName[st.from]; base != nil {
				st.built = slices.Clone(base.built)
			}
			stages = append(stages, st)
		case len(stages) == 0:
		case strings.HasPrefix(line, "USER "):
			stages[len(stages)-1].user = f[1]
		case strings.HasPrefix(line, "COPY --from="):
			stages[len(stages)-1].copied = append(stages[len(stages)-1].copied, path.Base(f[len(f)-2]))
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			for _, a := range f {
				if strings.HasPrefix(a, "./cmd/") {
					stages[len(stages)-1].built = append(stages[len(stages)-1].built, path.Base(a))
					if _, err := os.Stat(filepath.Join(repoRoot, a, "main.go")); err != nil {
						t.Errorf("Dockerfile builds %s, which has no main.go", a)
					}
				}
			}
		case strings.HasPrefix(line, "ENV ") || strings.HasPrefix(line, "ARG "):
			if f[0] == "ARG" {
				name, _, _ := strings.Cut(f[1], "=")
				args[name] = true
			}
			up := strings.ToUpper(line)
			for _, s := range []string{"SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY"} {
				if strings.Contains(up, s) {
					t.Errorf("Dockerfile bakes %q into the image", line)
				}
			}
		}
	}
	if len(stages) < 2 || !strings.HasPrefix(stages[0].from, "golang:1.26") {
		t.Fatalf("want a multi-stage build from golang:1.26, got %d stages", len(stages))
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("Dockerfile does not set CGO_ENABLED=0 (static binaries)")
	}
	// image checks a stage that compose runs: distroless or scratch, non-root,
	// holding exactly the binaries it was copied.
	image := func(st *stage) {
		if !strings.Contains(st.from, "distroless/static") && st.from != "scratch" {
			t.Errorf("stage %s from %s, want distroless/static or scratch", st.name, st.from)
		}
		if u, _, _ := strings.Cut(st.user, ":"); u == "" || u == "root" || u == "0" {
			t.Errorf("stage %s: USER %q, want a non-root user", st.name, st.user)
		}
	}
	final := stages[len(stages)-1]
	image(final)
	if !slices.Equal(final.copied, []string{"qfpurge"}) {
		t.Errorf("the default image holds %v, want qfpurge alone", final.copied)
	}
	c := loadCompose(t)
	envExample := loadEnvExample(t)
	for name, svc := range c.Services {
		if !svc.ours() || len(svc.Command) == 0 {
			continue
		}
		st := final
		if b, ok := svc.Build.(map[string]any); ok && b["target"] != nil {
			if st = byName[fmt.Sprint(b["target"])]; st == nil {
				t.Errorf("service %s builds target %v, which the Dockerfile lacks", name, b["target"])
				continue
			}
			image(st)
		}
		if !slices.Contains(st.copied, svc.Command[0]) {
			t.Errorf("service %s runs %s, which its image does not hold (%v)", name, svc.Command[0], st.copied)
		}
		// The revision qfpurge version names reaches the build (no .git
		// in the context), from a variable .env.example documents.
		if svc.Build != nil && st == final {
			b, _ := svc.Build.(map[string]any)
			bargs, _ := b["args"].(map[string]any)
			if bargs["QFPURGE_REVISION"] == nil {
				t.Errorf("service %s builds qfpurge without the QFPURGE_REVISION build argument", name)
			}
			for k, v := range bargs {
				if !args[k] {
					t.Errorf("service %s passes build argument %s, which the Dockerfile does not declare", name, k)
				}
				for _, m := range varRE.FindAllStringSubmatch(fmt.Sprint(v), -1) {
					if _, ok := envExample[m[1]]; !ok {
						t.Errorf("service %s's build argument %s uses ${%s}, which .env.example does not document", name, k, m[1])
					}
				}
			}
		}
	}
	// The build context must not carry local secrets into the image.
	ign, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(ign)), ".env") {
		t.Error(".dockerignore does not exclude .env")
	}
}
