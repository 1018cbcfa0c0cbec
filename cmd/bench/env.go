package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// env is everything a run shares: a work directory, the binaries built once,
// one redis-server (flushed between scenarios) and the child processes alive.
type env struct {
	dir      string
	keep     bool
	log      io.Writer
	self     string // this binary, for the child roles
	worker   string // built cmd/worker
	enqueue  string // built cmd/enqueue, when the bulk scenario runs
	rules    string // built cmd/qfpurge, whose rules command the plan scenario runs
	addrFlag []string
	// batchWait is given to every worker as --batch-wait.
	batchWait time.Duration
	redis     *redistest.Server
	rdb       *redis.Client

	mu    sync.Mutex
	procs map[*proc]bool
}

func newEnv(ctx context.Context, log io.Writer, keep, withEnqueue, withRules bool) (*env, error) {
	dir, err := os.MkdirTemp("", "qfpurge-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, keep: keep, log: log, procs: map[*proc]bool{}, batchWait: 2 * time.Second}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	e.worker = filepath.Join(dir, "worker")
	if err := goBuild(ctx, root, e.worker, "./cmd/worker"); err != nil {
		return nil, err
	}
	if withEnqueue {
		e.enqueue = filepath.Join(dir, "enqueue")
		if err := goBuild(ctx, root, e.enqueue, "./cmd/enqueue"); err != nil {
			return nil, err
		}
	}
	if withRules {
		e.rules = filepath.Join(dir, "qfpurge")
		if err := goBuild(ctx, root, e.rules, "./cmd/qfpurge"); err != nil {
			return nil, err
		}
	}
	e.addrFlag = listenerFlags(ctx, e.worker)
	if err := os.Mkdir(filepath.Join(dir, "redis"), 0o755); err != nil {
		return nil, err
	}
	if e.redis, err = redistest.StartProcess(filepath.Join(dir, "redis")); err != nil {
		return nil, err
	}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	ok = true
	return e, nil
}

// Close kills every child process and redis-server and removes the work dir.
func (e *env) Close() {
	e.mu.Lock()
	ps := make([]*proc, 0, len(e.procs))
	for p := range e.procs {
		ps = append(ps, p)
	}
	e.mu.Unlock()
	for _, p := range ps {
		p.Kill()
	}
	httpc.CloseIdleConnections()
	if e.rdb != nil {
		e.rdb.Close()
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	if !e.keep {
		os.RemoveAll(e.dir)
	}
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench inside the qfpurge module (go run ./cmd/bench)")
	}
	return filepath.Dir(mod), nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// listenerFlags turns off the worker's optional listeners (monitor, metrics,
// HTTP API), whatever they are called, so parallel workers never clash on a
// port: every "-...-addr" flag but --embedded-addr is set empty.
func listenerFlags(ctx context.Context, worker string) []string {
	out, _ := exec.CommandContext(ctx, worker, "-h").CombinedOutput()
	var flags []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "-") {
			continue
		}
		name := strings.TrimLeft(f[0], "-")
		if strings.HasSuffix(name, "-addr") && name != "embedded-addr" {
			flags = append(flags, "--"+name+"=")
		}
	}
	return flags
}

// reset empties Redis between scenarios.
func (e *env) reset(ctx context.Context) error {
	return e.rdb.FlushAll(ctx).Err()
}

// proc is one child process; its output goes to a log file in the work dir.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	e    *env
}

// start runs a child. stdout lines are sent to lines when it is not nil.
func (e *env) start(name string, environ []string, lines chan<- string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	var stdout io.ReadCloser
	if lines != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), e: e}
	if stdout != nil {
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}()
	}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs[p] = true
	e.mu.Unlock()
	return p, nil
}

// Pid is the child's process ID.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the exit.
func (p *proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.forget()
}

// Stop sends SIGTERM and waits up to d, then kills.
func (p *proc) Stop(d time.Duration) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.forget()
}

func (p *proc) forget() {
	p.e.mu.Lock()
	delete(p.e.procs, p)
	p.e.mu.Unlock()
}

// exited reports an early exit of the child as an error.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early: %v (see %s.log in the work dir)", p.name, p.err, p.name)
	default:
		return nil
	}
}

// peakRSS reads VmHWM of a running child from /proc, in bytes; 0 where
// /proc is not available.
func (p *proc) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// fakeConfig is how the fake Qianfan child is started.
type fakeConfig struct {
	QPS     int
	Latency time.Duration
	Invalid []string // "i:<n>" or "s:<text>"
	// Inventory, when set, is the account the fake holds (inventory mode).
	Inventory *qianfantest.Inventory
	// ReadKey: the fake also holds the read-only pair benchReadAK.
	ReadKey bool
	// QPSPerKey: the cap counts each access key apart.
	QPSPerKey bool
}

// fake is a running fake Qianfan child.
type fake struct {
	*proc
	URL string
}

// startFake starts the fake Qianfan as a child process (fakeqianfan behind
// a small wrapper that also reports per-ID delete counts) and waits for
// its "listening on" line.
func (e *env) startFake(ctx context.Context, name string, c fakeConfig) (*fake, error) {
	args := []string{"-addr", "127.0.0.1:0", "-qps", strconv.Itoa(c.QPS), "-latency", c.Latency.String()}
	if c.ReadKey {
		args = append(args, "-read-key")
	}
	if c.QPSPerKey {
		args = append(args, "-qps-per-key")
	}
	if len(c.Invalid) > 0 {
		f := filepath.Join(e.dir, name+"-invalid.txt")
		if err := os.WriteFile(f, []byte(strings.Join(c.Invalid, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "-invalid-file", f)
	}
	if c.Inventory != nil {
		f := filepath.Join(e.dir, name+"-inventory.json")
		var b bytes.Buffer
		if err := c.Inventory.WriteJSON(&b); err != nil {
			return nil, err
		}
		if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "-inventory", f)
	}
	// A large account takes the fake a while to read.
	wait := 10 * time.Second
	if c.Inventory != nil {
		wait += time.Duration(len(c.Inventory.Models)) * 200 * time.Microsecond
	}
	lines := make(chan string, 4)
	p, err := e.start(name, []string{roleEnv + "=" + roleFake}, lines, e.self, args...)
	if err != nil {
		return nil, err
	}
	select {
	case l := <-lines:
		u, ok := strings.CutPrefix(l, "listening on ")
		if !ok {
			p.Kill()
			return nil, fmt.Errorf("fake: unexpected first line %q", l)
		}
		return &fake{proc: p, URL: u}, nil
	case <-p.done:
		return nil, p.exited()
	case <-time.After(wait):
		p.Kill()
		return nil, fmt.Errorf("fake did not start within %s", wait)
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

var httpc = &http.Client{Timeout: 10 * time.Second}

// Stats reads the fake's /_fake/stats.
func (f *fake) Stats(ctx context.Context) (qianfantest.Stats, error) {
	var st qianfantest.Stats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+"/_fake/stats", nil)
	resp, err := httpc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
}

// SetFaults posts to the fake's /_fake/faults.
func (f *fake) SetFaults(ctx context.Context, fl qianfantest.Faults) error {
	b, _ := json.Marshal(fl)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+"/_fake/faults", strings.NewReader(string(b)))
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("set faults: HTTP %d", resp.StatusCode)
	}
	return nil
}

// DeleteCounts asks the wrapper how often each ID ("i:<n>"/"s:<text>") of
// kind was deleted.
func (f *fake) DeleteCounts(ctx context.Context, kind string, ids []string) ([]int, error) {
	b, _ := json.Marshal(countsRequest{Kind: kind, IDs: ids})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+"/_bench/counts", strings.NewReader(string(b)))
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []int
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, err
	}
	if len(out) != len(ids) {
		return nil, fmt.Errorf("counts: got %d for %d IDs", len(out), len(ids))
	}
	return out, nil
}

// workerConfig holds the worker flags a scenario sets; the rest keep the
// worker's defaults.
type workerConfig struct {
	QPS         float64
	BatchSize   int
	Concurrency int
	Extra       []string
	// ReadKey: the worker reads with the read-only pair benchReadAK.
	ReadKey bool
}

// startWorker starts cmd/worker against the env's Redis and fake.
func (e *env) startWorker(name string, f *fake, c workerConfig) (*proc, error) {
	args := []string{
		"--qps", strconv.FormatFloat(c.QPS, 'f', -1, 64),
		"--batch-size", strconv.Itoa(c.BatchSize),
		"--concurrency", strconv.Itoa(c.Concurrency),
		"--batch-wait", e.batchWait.String(),
	}
	args = append(args, e.addrFlag...)
	args = append(args, c.Extra...)
	environ := []string{
		"REDIS_URL=" + e.redis.URL(),
		"QIANFAN_ACCESS_KEY=" + qianfantest.DefaultAccessKey,
		"QIANFAN_SECRET_KEY=" + qianfantest.DefaultSecretKey,
		"QIANFAN_BASE_URL=" + f.URL,
	}
	if c.ReadKey {
		environ = append(environ, "QIANFAN_READ_ACCESS_KEY="+benchReadAK, "QIANFAN_READ_SECRET_KEY="+benchReadSK)
	}
	return e.start(name, environ, nil, e.worker, args...)
}

// queueEmpty reports whether nothing of queue waits, runs, retries or sits
// in a group.
func queueEmpty(insp *asynq.Inspector, queue string) bool {
	q, err := insp.GetQueueInfo(queue)
	if err != nil {
		return false
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0
}

// waitFor polls cond every step until it is true, ctx is done or limit passes.
func waitFor(ctx context.Context, limit, step time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
}

// lastEventTime is the Redis time of the newest qfpurge:events entry.
func lastEventTime(ctx context.Context, rdb *redis.Client) (time.Time, error) {
	msgs, err := rdb.XRevRangeN(ctx, ledger.EventStream, "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return time.Time{}, err
	}
	return streamTime(msgs[0].ID), nil
}

// firstEventTime is the Redis time of the oldest qfpurge:events entry.
func firstEventTime(ctx context.Context, rdb *redis.Client) (time.Time, error) {
	msgs, err := rdb.XRangeN(ctx, ledger.EventStream, "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return time.Time{}, err
	}
	return streamTime(msgs[0].ID), nil
}

// streamTime reads the millisecond time of a stream entry ID.
func streamTime(id string) time.Time {
	ms, _ := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64)
	return time.UnixMilli(ms)
}

// usedMemory is INFO memory's used_memory.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	s, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO")
}

// commandStats is INFO commandstats: calls by command ("cmdstat_hset" →
// "hset").
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		if n, err := strconv.ParseInt(calls, 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, nil
}

func machine() string {
	cpus := "?"
	if out, err := exec.Command("nproc").Output(); err == nil {
		cpus = strings.TrimSpace(string(out))
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
			}
		}
	}
	gov, _ := exec.Command("go", "version").Output()
	rv, _ := exec.Command(redistest.Binary(), "--version").Output()
	return fmt.Sprintf("%s CPUs, MemTotal %s, %s, %s", cpus, mem, strings.TrimSpace(string(gov)), strings.TrimSpace(string(rv)))
}

// queueState says where a queue's tasks are, for a run that did not
// finish: how many wait, run, are scheduled, retry, aggregate, and the
// last error of a few retrying tasks.
func queueState(insp *asynq.Inspector, queue string) string {
	q, err := insp.GetQueueInfo(queue)
	if err != nil {
		return "queue: " + err.Error()
	}
	s := fmt.Sprintf("queue %s: pending %d, active %d, scheduled %d, retry %d, aggregating %d, archived %d",
		queue, q.Pending, q.Active, q.Scheduled, q.Retry, q.Aggregating, q.Archived)
	if ts, err := insp.ListRetryTasks(queue, asynq.PageSize(5)); err == nil {
		for _, t := range ts {
			s += fmt.Sprintf("\n  retry %s (retried %d, next %s): %s", t.ID, t.Retried, t.NextProcessAt.Format(time.TimeOnly), t.LastErr)
		}
	}
	if ts, err := insp.ListScheduledTasks(queue, asynq.PageSize(5)); err == nil {
		for _, t := range ts {
			s += fmt.Sprintf("\n  scheduled %s (next %s)", t.ID, t.NextProcessAt.Format(time.TimeOnly))
		}
	}
	return s
}

// cmdMonitor counts, through MONITOR, the commands clients send and the
// commands scripts run (source "lua"), by name. INFO commandstats counts
// both together.
type cmdMonitor struct {
	conn      net.Conn
	mu        sync.Mutex
	sent, lua map[string]int64
}

func startMonitor(addr string) (*cmdMonitor, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		conn.Close()
		return nil, err
	}
	m := &cmdMonitor{conn: conn, sent: map[string]int64{}, lua: map[string]int64{}}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if !sc.Scan() || sc.Text() != "+OK" {
		conn.Close()
		return nil, fmt.Errorf("MONITOR: %q %v", sc.Text(), sc.Err())
	}
	go func() {
		for sc.Scan() {
			m.add(sc.Text())
		}
	}()
	return m, nil
}

// add counts one line: `+1700000000.1 [0 127.0.0.1:5] "hget" "k" "f"`.
func (m *cmdMonitor) add(line string) {
	i := strings.Index(line, " [")
	if i < 0 {
		return
	}
	j := strings.Index(line[i:], "] \"")
	if j < 0 {
		return
	}
	src, rest := line[i+2:i+j], line[i+j+3:]
	k := strings.IndexByte(rest, '"')
	if k < 0 {
		return
	}
	name := strings.ToLower(rest[:k])
	m.mu.Lock()
	if strings.HasSuffix(src, "lua") {
		m.lua[name]++
	} else {
		m.sent[name]++
	}
	m.mu.Unlock()
}

// counts returns copies of the counts so far.
func (m *cmdMonitor) counts() (sent, lua map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.sent), maps.Clone(m.lua)
}

func (m *cmdMonitor) Close() { m.conn.Close() }
