// Command fakeqianfan serves the fakeqianfan fake of Qianfan's
// model-management API (V1 and V2) for demos, docker-compose and
// benchmarks. It prints "listening on http://ADDR" once ready, so
// -addr 127.0.0.1:0 works in scripts.
//
// Without -models or -inventory it runs in open-world mode (every ID exists
// until deleted); with either it holds an inventory that can be listed. The
// /_fake/ endpoints (see package fakeqianfan) change it at run time.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakeqianfan:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h asked for the usage, which was printed
	}
	if err != nil {
		return err
	}
	cfg := o.cfg
	if o.dumpFile != "" && cfg.Inventory != nil {
		if err := writeInventory(o.dumpFile, cfg.Inventory); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	models := -1 // open world
	if cfg.Inventory != nil {
		models = len(cfg.Inventory.Models)
	}
	log.Info("fake qianfan starting", "addr", ln.Addr().String(), "access_key", o.accessKey, "secret_key", "****", "read_access_key", o.readAccessKey,
		"qps", cfg.QPS, "max_ids", cfg.MaxIDs, "invalid", o.invalid, "faults", fmt.Sprintf("%+v", cfg.Faults),
		"models", models, "v1_off_after", cfg.V1OffAfter, "v2_off_after", cfg.V2OffAfter,
		"assumptions", fmt.Sprintf("%+v", cfg.Assumptions))
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	err = serve(ctx, &http.Server{Handler: qianfantest.New(cfg), ReadHeaderTimeout: 10 * time.Second}, ln)
	log.Info("fake qianfan stopped")
	return err
}

// options is the command line: the fake's configuration and what run does
// around it.
type options struct {
	cfg       qianfantest.Config
	addr      string
	dumpFile  string
	accessKey string
	// readAccessKey is the read-only key, "" when none.
	readAccessKey string
	invalid       int // how many IDs -invalid names
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("fakeqianfan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8300", "listen address")
	ak := fs.String("access-key", orDefault(getenv("QIANFAN_ACCESS_KEY"), qianfantest.DefaultAccessKey), "accepted access key (env QIANFAN_ACCESS_KEY)")
	sk := fs.String("secret-key", orDefault(getenv("QIANFAN_SECRET_KEY"), qianfantest.DefaultSecretKey), "its secret key (env QIANFAN_SECRET_KEY)")
	rak := fs.String("read-access-key", getenv("QIANFAN_READ_ACCESS_KEY"), "also accept this access key, read-only: it lists, and every delete it signs answers 403 (env QIANFAN_READ_ACCESS_KEY)")
	rsk := fs.String("read-secret-key", getenv("QIANFAN_READ_SECRET_KEY"), "its secret key (env QIANFAN_READ_SECRET_KEY)")
	cfg := qianfantest.Config{}
	fs.IntVar(&cfg.QPS, "qps", 0, "answer error_code 18 above this many calls per second (0 = off)")
	fs.IntVar(&cfg.MaxIDs, "max-ids", 0, "answer 500001 for longer lists (0 = unlimited)")
	invalid := fs.String("invalid", "", "comma-separated IDs that do not exist (numbers are int IDs)")
	f := &cfg.Faults
	fs.DurationVar(&f.Latency, "latency", 0, "added latency per call")
	fs.Float64Var(&f.Rate503, "rate-503", 0, "rate of HTTP 503")
	fs.Float64Var(&f.Rate336100, "rate-336100", 0, "rate of error_code 336100")
	fs.Float64Var(&f.Rate500000, "rate-500000", 0, "rate of error_code 500000")
	fs.Float64Var(&f.RateReset, "rate-reset", 0, "rate of connection resets before deleting")
	fs.Float64Var(&f.RateDropAfterDelete, "rate-drop", 0, "rate of dropped answers after deleting")
	fs.Int64Var(&f.Seed, "seed", 1, "fault generator seed")
	var g qianfantest.Generate
	fs.IntVar(&g.Models, "models", 0, "make up an inventory of this many models (0 = open world)")
	fs.IntVar(&g.Versions, "versions", 1, "versions per made-up model")
	fs.IntVar(&g.Services, "services", 0, "made-up custom services, each running a random model's version")
	fs.Int64Var(&g.Seed, "inventory-seed", 1, "seed of the made-up inventory")
	invFile := fs.String("inventory", "", "load the inventory from this JSON `file` (format: package fakeqianfan, type Inventory)")
	dumpFile := fs.String("dump-inventory", "", "write the starting inventory to this JSON `file`")
	asmFile := fs.String("assumptions", "", "read undocumented-behaviour switches from this JSON `file` (type Assumptions); the flags below override it")
	qpsPerKey := fs.Bool("qps-per-key", false, "-qps caps each access key's calls apart (default: one window for every call, whichever key signs it)")
	refuseInUse := fs.Bool("refuse-in-use", false, "refuse to delete a model or version a service runs (default: delete it, breaking the service)")
	partial := fs.Bool("v1-partial-batch", false, "a rejected V1 batch first deletes the IDs before the bad one (default: nothing)")
	maxPage := fs.Int("v1-max-page-size", 0, "largest V1 pageSize honoured; larger is cut (0 = 100)")
	intIDs := fs.Bool("v2-accepts-int-ids", false, "V2 calls accept int IDs (default: 400 InappropriateJSON)")
	v1Gone := fs.String("v1-gone", "", "how V1 answers once off: one of "+strings.Join(goneNames(), ", ")+" (default v1-code-3)")
	v2Gone := fs.String("v2-gone", "", "how V2 answers once off, as -v1-gone (default 404-empty)")
	fs.IntVar(&cfg.V1OffAfter, "v1-off-after", 0, "V1 serves this many calls, then answers as gone (0 = never)")
	fs.IntVar(&cfg.V2OffAfter, "v2-off-after", 0, "V2 serves this many calls, then answers as gone (0 = never)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	asm, err := readAssumptions(*asmFile)
	if err != nil {
		return options{}, err
	}
	asm.RefuseInUse = asm.RefuseInUse || *refuseInUse
	asm.QPSPerAccessKey = asm.QPSPerAccessKey || *qpsPerKey
	asm.V1PartialBatch = asm.V1PartialBatch || *partial
	asm.V2AcceptsIntIDs = asm.V2AcceptsIntIDs || *intIDs
	if *maxPage > 0 {
		asm.V1MaxPageSize = *maxPage
	}
	for _, gone := range []struct {
		name string
		into *qianfantest.Answer
	}{{*v1Gone, &asm.V1Gone}, {*v2Gone, &asm.V2Gone}} {
		if gone.name == "" {
			continue
		}
		a, ok := qianfantest.GoneForms()[gone.name]
		if !ok {
			return options{}, fmt.Errorf("unknown gone form %q: want one of %s", gone.name, strings.Join(goneNames(), ", "))
		}
		*gone.into = a
	}
	cfg.Assumptions = asm
	if cfg.Inventory, err = loadInventory(*invFile, g); err != nil {
		return options{}, err
	}
	cfg.Credentials = map[string]string{*ak: *sk}
	if (*rak == "") != (*rsk == "") || (*rak != "" && *rak == *ak) {
		return options{}, errors.New("-read-access-key and -read-secret-key go together, and name another key than -access-key")
	}
	if *rak != "" {
		cfg.Credentials[*rak] = *rsk
		cfg.Permissions = map[string]qianfantest.Permission{*rak: qianfantest.PermRead}
	}
	ids := parseIDs(*invalid)
	cfg.Invalid = qianfantest.InvalidIDs(ids...)
	return options{cfg: cfg, addr: *addr, dumpFile: *dumpFile, accessKey: *ak, readAccessKey: *rak, invalid: len(ids)}, nil
}

// parseIDs reads -invalid: numbers are int IDs, the rest string IDs.
func parseIDs(list string) []any {
	var ids []any
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			ids = append(ids, n)
		} else {
			ids = append(ids, s)
		}
	}
	return ids
}

// serve runs srv on ln until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func goneNames() []string {
	return slices.Sorted(maps.Keys(qianfantest.GoneForms()))
}

func readAssumptions(path string) (qianfantest.Assumptions, error) {
	var a qianfantest.Assumptions
	if path == "" {
		return a, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return a, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("assumptions %s: %w", path, err)
	}
	return a, nil
}

// loadInventory reads -inventory or makes one up from -models; nil means
// open world.
func loadInventory(path string, g qianfantest.Generate) (*qianfantest.Inventory, error) {
	switch {
	case path != "" && g.Models > 0:
		return nil, errors.New("-inventory and -models exclude each other")
	case path != "":
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return qianfantest.ReadInventory(f)
	case g.Models > 0:
		return qianfantest.NewInventory(g, time.Now()), nil
	case g.Services > 0:
		return nil, errors.New("-services needs -models")
	}
	return nil, nil
}

func writeInventory(path string, inv *qianfantest.Inventory) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := inv.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
