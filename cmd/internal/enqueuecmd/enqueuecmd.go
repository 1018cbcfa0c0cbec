// Package enqueuecmd is the enqueue command (qfpurge enqueue, cmd/enqueue):
// it hands Qianfan model deletions to qfpurge workers.
//
//	enqueue [flags] ID...
//	enqueue [flags] -f ids.txt      (one ID per line, or JSON arrays / JSON lines)
//	enqueue [flags] -f - < ids.json
//
// An ID is a positive whole number (an int ID) or a Qianfan string ID
// (am-… for models, amv-… for model versions); both types may be mixed and
// are split into separate batches. Flags may come before or after the IDs;
// "--" ends the flags. Any invalid ID rejects the whole input with its line,
// and nothing is enqueued.
//
// The input is read twice and never held: a first pass checks every ID, the
// second enqueues batch by batch (stdin that is not a file is copied to a
// temporary file for it). Memory follows the batch size and the dedupe
// window, not the input.
//
// Exit status: 0 enqueued, 1 runtime failure (e.g. Redis unreachable), 2 bad
// input or usage.
package enqueuecmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// progressThreshold is the input size from which a terminal gets a progress bar.
const progressThreshold = 20_000

// maxShown is how many invalid entries the error lists.
const maxShown = 20

const usageHead = `Enqueues Qianfan model deletions for qfpurge workers. An ID is a positive
whole number (585) or a Qianfan string ID (am-… for models, amv-… for model
versions). Flags may come before or after the IDs; -- ends the flags.
Environment: REDIS_URL (redis://[user:pass@]host:port/db), required unless
--redis-url is given.`

type options struct {
	file, kind, at, redisURL, key, progress, as string
	in                                          time.Duration
	asJSON, gone, deleteInUse, dryRun           bool
	batchSize, shards                           int
	getenv                                      func(string) string
}

// register defines enqueue's flags on fs; a flag is added here and read
// from o where run uses it.
func (o *options) register(fs *pflag.FlagSet) {
	fs.StringVarP(&o.file, "file", "f", "", "read IDs from `FILE` (- for stdin): one per line, or JSON arrays / JSON lines")
	fs.StringVar(&o.kind, "kind", "model", "what to delete: model or version")
	fs.DurationVar(&o.in, "in", 0, "delete after this `DURATION` (e.g. 2h)")
	fs.StringVar(&o.at, "at", "", "delete at this `TIME` (RFC 3339, e.g. 2026-12-01T03:00:00+08:00)")
	fs.BoolVar(&o.asJSON, "json", false, "print the receipt as JSON: counts, and every task with its ID type, size, group or time")
	// Shown without REDIS_URL's value: it may carry a password.
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	fs.IntVar(&o.batchSize, "batch-size", tasks.DefaultBatchSize, "most IDs per API call; keep equal to the workers' --batch-size")
	fs.IntVar(&o.shards, "shards", enqueue.DefaultShards, fmt.Sprintf("groups per kind and ID type for small jobs (1-%d)", tasks.MaxShards))
	fs.StringVar(&o.key, "key", "", "idempotency key: enqueuing the same request again adds nothing; the key with other IDs is refused (without it a req-… key is generated, to follow and cancel by)")
	fs.StringVar(&o.as, "as", "", "who asks, recorded with every outcome (default user@host)")
	fs.BoolVar(&o.deleteInUse, "delete-in-use", false, "delete these IDs even where a service or batch inference task uses them (recorded with each outcome)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "delete nothing: say per ID what a run would do now (exists, in use and by what, already gone, cannot tell); needs QIANFAN_* keys (a read-only pair is enough)")
	fs.StringVar(&o.progress, "progress", "auto", "progress bar on stderr: auto (terminal and large input), always or never")
	// --string read bare numbers as string IDs: Qianfan's string IDs are
	// never bare numbers, so it could only misread input.
	fs.BoolVar(&o.gone, "string", false, "")
	_ = fs.MarkHidden("string")
	fs.SortFlags = false
}

// New returns the enqueue command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "enqueue [flags] [ID ...]",
		Short: "Enqueue deletions: IDs as arguments or from a file",
		Long:  usageHead,
		RunE: func(c *cobra.Command, ids []string) error {
			if o.gone {
				return cli.Usagef("--string is no longer supported: a bare number is an int ID, and string IDs are told by their am- or amv- prefix")
			}
			o.redisURL = cmp.Or(o.redisURL, getenv("REDIS_URL"))
			o.getenv = getenv
			return enqueueIDs(c.Context(), o, ids, c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	o.register(cmd.Flags())
	return cmd
}

func enqueueIDs(ctx context.Context, o options, argIDs []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.redisURL == "" {
		return cli.ErrNoRedis
	}
	kind, err := modelid.ParseKind(o.kind)
	if err != nil {
		return cli.Usagef("--kind: %w", err)
	}
	var processAt time.Time
	now := time.Now()
	switch {
	case o.in > 0 && o.at != "":
		return cli.Usagef("give --in or --at, not both")
	case o.in != 0:
		if err := enqueue.CheckDelay(o.in); err != nil {
			return cli.Usagef("--in: %w", err)
		}
		processAt = now.Add(o.in)
	case o.at != "":
		if processAt, err = time.Parse(time.RFC3339, o.at); err != nil {
			return cli.Usagef("--at %q is not RFC 3339 (like 2026-12-01T03:00:00+08:00)", o.at)
		}
		if err := enqueue.CheckWhen(processAt, now); err != nil {
			return cli.Usagef("--at: %w", err)
		}
		if !processAt.After(now) {
			processAt = time.Time{} // within the clocks' slack: now
		}
	}
	if o.progress != "auto" && o.progress != "always" && o.progress != "never" {
		return cli.Usagef("--progress %q: want auto, always or never", o.progress)
	}

	in, err := openInput(o.file, stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	var digest enqueue.Digest
	total, err := check(argIDs, in, kind, &digest)
	if err != nil {
		return err
	}
	if o.dryRun {
		getenv := o.getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		return dryRun(ctx, o, getenv, kind, argIDs, in, stdout)
	}

	rdb, err := cli.ConnectRedis(ctx, o.redisURL)
	if err != nil {
		return fmt.Errorf("%w (is REDIS_URL right, and is a worker or Redis running?)", err)
	}
	defer rdb.Close()
	ctx, endTrace, tp, err := startTrace(ctx, o.getenv)
	if err != nil {
		return cli.Usage(err)
	}
	defer func() { endTrace(err) }()
	p, err := enqueue.New(rdb, enqueue.Config{BatchSize: o.batchSize, Shards: o.shards, TracerProvider: tp})
	if err != nil {
		return cli.Usage(err)
	}

	out := newReport(stdout, o.asJSON, kind, o.key)
	req := enqueue.Request{Kind: kind, ProcessAt: processAt, Key: o.key, OnBatch: out.batch, DeleteInUse: o.deleteInUse,
		RequestedBy: cmp.Or(o.as, cli.WhoAmI())}
	if o.key != "" {
		req.Digest = digest.Sum(req)
	}
	if bar := newBar(o.progress, total, stderr); bar != nil {
		req.Progress = func(done int) { _ = bar.Set(done) }
		defer bar.Finish()
	}
	start := time.Now()
	s, err := p.Stream(req)
	if err != nil {
		return cli.Usage(err)
	}
	out.key, out.generated = s.Receipt().Key, s.Receipt().KeyGenerated
	err = feed(ctx, s, argIDs, in, kind)
	if err == nil {
		_, err = s.Close(ctx)
	}
	out.finish(s.Receipt(), err, time.Since(start))
	if errors.Is(err, enqueue.ErrKeyConflict) {
		return cli.Usage(err)
	}
	if err != nil {
		return fmt.Errorf("%w (Redis %s)", err, redisconn.Redact(o.redisURL))
	}
	return nil
}

// input is the -f input, readable twice.
type input struct {
	name   string
	f      *os.File // nil without -f
	spool  *os.File // set when stdin was copied for the second pass
	source io.Reader
}

func openInput(file string, stdin io.Reader) (*input, error) {
	switch file {
	case "":
		return &input{}, nil
	case "-":
		if f, ok := stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				return &input{name: "stdin", f: f, source: f}, nil
			}
		}
		// A pipe can be read once: the first pass copies it.
		spool, err := os.CreateTemp("", "qfpurge-enqueue-*.ids")
		if err != nil {
			return nil, fmt.Errorf("spool stdin for the second pass: %w", err)
		}
		_ = os.Remove(spool.Name()) // gone once closed, whatever happens
		return &input{name: "stdin", f: spool, spool: spool, source: io.TeeReader(stdin, spool)}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, cli.Usage(err)
	}
	return &input{name: file, f: f, source: f}, nil
}

func (in *input) Close() error {
	if in.f != nil {
		return in.f.Close()
	}
	return nil
}

// rewind makes the input readable again for the second pass.
func (in *input) rewind() (io.Reader, error) {
	if _, err := in.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s again: %w", in.name, err)
	}
	return in.f, nil
}

// check is the first pass: every ID is judged, nothing is kept but the
// count and the first invalid entries.
// Each ID is added to d, so a keyed request can be told from another one
// that reuses its key.
func check(args []string, in *input, kind modelid.Kind, d *enqueue.Digest) (int, error) {
	var (
		n    int
		bad  []string
		more int
	)
	report := func(s string) {
		if len(bad) < maxShown {
			bad = append(bad, s)
		} else {
			more++
		}
	}
	for i, a := range args {
		id, err := modelid.ParseID(a)
		if err == nil {
			err = id.CheckKind(kind)
		}
		if err != nil {
			report(fmt.Sprintf("argument %d %q: %v", i+1, a, err))
			continue
		}
		d.Add(id)
		n++
	}
	if in.f != nil {
		sc := modelid.NewScanner(in.source, kind)
		for sc.Scan() {
			if v, ok := sc.Invalid(); ok {
				report(fmt.Sprintf("%s:%d %q: %s", in.name, v.Index, v.Text, v.Reason))
				continue
			}
			d.Add(sc.ID())
			n++
		}
		if err := sc.Err(); err != nil {
			return 0, fmt.Errorf("read %s: %w", in.name, err)
		}
	}
	if len(bad) > 0 {
		msg := fmt.Sprintf("%s, nothing enqueued:\n  %s", modelid.Plural(len(bad)+more, "invalid ID", "invalid IDs"), strings.Join(bad, "\n  "))
		if more > 0 {
			msg += fmt.Sprintf("\n  ... and %d more", more)
		}
		return 0, cli.Usage(errors.New(msg))
	}
	if n == 0 {
		return 0, cli.Usagef("no IDs given: pass them as arguments or with -f FILE")
	}
	return n, nil
}

// feed is the second pass: the same IDs, into the stream.
func feed(ctx context.Context, s *enqueue.Stream, args []string, in *input, kind modelid.Kind) error {
	for _, a := range args {
		id, _ := modelid.ParseID(a) // checked in the first pass
		if err := s.Add(ctx, id); err != nil {
			return err
		}
	}
	if in.f == nil {
		return nil
	}
	r, err := in.rewind()
	if err != nil {
		return err
	}
	sc := modelid.NewScanner(r, kind)
	for sc.Scan() {
		if v, ok := sc.Invalid(); ok {
			return fmt.Errorf("%s changed after it was checked: line %d %q: %s; what was enqueued before it is listed", in.name, v.Index, v.Text, v.Reason)
		}
		if err := s.Add(ctx, sc.ID()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s again: %w", in.name, err)
	}
	return nil
}

func newBar(mode string, total int, stderr io.Writer) *progressbar.ProgressBar {
	f, isFile := stderr.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	if mode == "never" || (mode == "auto" && (!tty || total < progressThreshold)) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("enqueuing IDs"),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// report writes what was enqueued as it goes: with --json every task as a
// JSON array element (the receipt stays valid JSON on a failure part-way,
// with an "error" member); else a summary and the first tasks.
type report struct {
	w         io.Writer
	key       string
	generated bool // key was generated for the request
	asJSON    bool
	kind      modelid.Kind
	n         int
	shown     []enqueue.Batch
	count     map[string]int
	at        map[time.Time]bool
}

const textShown = 10

func newReport(w io.Writer, asJSON bool, kind modelid.Kind, key string) *report {
	return &report{w: w, key: key, asJSON: asJSON, kind: kind, count: map[string]int{}, at: map[time.Time]bool{}}
}

func (r *report) batch(b enqueue.Batch) {
	r.n++
	if r.asJSON {
		if r.n == 1 {
			r.jsonHead()
			fmt.Fprint(r.w, "\n    ")
		} else {
			fmt.Fprint(r.w, ",\n    ")
		}
		j, _ := json.Marshal(b)
		_, _ = r.w.Write(j)
		return
	}
	if len(r.shown) < textShown {
		r.shown = append(r.shown, b)
	}
	switch {
	case b.Existing:
		r.count["existing"]++
	case b.Group != "":
		r.count["grouped"]++
	case !b.At.IsZero():
		r.count["scheduled"]++
		if len(r.at) < 2 {
			r.at[b.At] = true
		}
	default:
		r.count["ready"]++
	}
}

// jsonHead opens the JSON receipt: kind, key, and the batches' array.
func (r *report) jsonHead() {
	k, _ := json.Marshal(r.key)
	fmt.Fprintf(r.w, "{\n  \"kind\": %q,\n  \"key\": %s,\n", r.kind, k)
	if r.generated {
		fmt.Fprint(r.w, "  \"key_generated\": true,\n")
	}
	fmt.Fprint(r.w, "  \"batches\": [")
}

// follow says how to follow and cancel the request.
func (r *report) follow() {
	what := "request key"
	if r.generated {
		what = "request key (generated)"
	}
	fmt.Fprintf(r.w, "%s %s: follow with \"qfpurge requests show %s\", cancel with \"qfpurge requests cancel %s\"\n",
		what, r.key, r.key, r.key)
}

func (r *report) finish(rc enqueue.Receipt, err error, took time.Duration) {
	if r.asJSON {
		if r.n == 0 {
			r.jsonHead()
		} else {
			fmt.Fprint(r.w, "\n  ")
		}
		fmt.Fprintf(r.w, "],\n  \"ids\": %d,\n  \"int_ids\": %d,\n  \"string_ids\": %d,\n  \"duplicates\": %d,\n  \"tasks\": %d",
			rc.IDs, rc.IntIDs, rc.StringIDs, rc.Duplicates, rc.Tasks)
		if err != nil {
			e, _ := json.Marshal(err.Error())
			fmt.Fprintf(r.w, ",\n  \"error\": %s", e)
		}
		fmt.Fprint(r.w, "\n}\n")
		return
	}
	if r.n == 0 && err != nil {
		return
	}
	var parts []string
	if n := r.count["ready"]; n > 0 {
		parts = append(parts, modelid.Plural(n, "batch", "batches")+" ready now")
	}
	if n := r.count["scheduled"]; n > 0 {
		when := "later"
		for t := range r.at {
			when = "for " + t.Format(time.RFC3339)
		}
		parts = append(parts, modelid.Plural(n, "batch", "batches")+" scheduled "+when)
	}
	if n := r.count["grouped"]; n > 0 {
		parts = append(parts, modelid.Plural(n, "job", "jobs")+" waiting to be batched")
	}
	if n := r.count["existing"]; n > 0 {
		parts = append(parts, modelid.Plural(n, "task", "tasks")+" already enqueued under this key")
	}
	if n := r.count["existing"]; n == r.n && err == nil {
		// The key was used before: this run added nothing.
		fmt.Fprintf(r.w, "nothing enqueued: key %q was used before (%s already enqueued under this key)\n", r.key,
			modelid.Plural(n, "task", "tasks"))
		r.follow()
		r.printShown(rc)
		return
	}
	verb := "enqueued"
	if err != nil {
		verb = "before the error, enqueued"
	}
	fmt.Fprintf(r.w, "%s %s (%d int, %d string; %s dropped) as %s: %s in %s\n",
		verb, modelid.Plural(rc.IDs, string(r.kind)+" ID", string(r.kind)+" IDs"), rc.IntIDs, rc.StringIDs,
		modelid.Plural(rc.Duplicates, "duplicate", "duplicates"), modelid.Plural(rc.Tasks, "task", "tasks"),
		strings.Join(parts, ", "), took.Round(time.Millisecond))
	r.follow()
	r.printShown(rc)
}

// printShown lists the first tasks.
func (r *report) printShown(rc enqueue.Receipt) {
	for _, b := range r.shown {
		var where string
		switch {
		case b.Existing:
			where = "already enqueued (" + cmp.Or(b.State, "no longer known to Asynq") + ")"
		case b.Group != "":
			where = "waiting in group " + b.Group
		case !b.At.IsZero():
			where = "scheduled for " + b.At.Format(time.RFC3339)
		default:
			where = "ready now"
		}
		fmt.Fprintf(r.w, "  task %s  %-6s %s  %s\n", b.TaskID, b.IDType, modelid.Plural(b.IDs, "ID", "IDs"), where)
	}
	if rc.Tasks > len(r.shown) {
		fmt.Fprintf(r.w, "  ... and %d more (--json lists all)\n", rc.Tasks-len(r.shown))
	}
}
