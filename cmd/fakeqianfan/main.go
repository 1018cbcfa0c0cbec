// Command fakeqianfan serves the fakeqianfan fake of Qianfan's batch-delete
// API for demos, docker-compose and benchmarks. It prints
// "listening on http://ADDR" once ready, so -addr 127.0.0.1:0 works in scripts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
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
	fs := flag.NewFlagSet("fakeqianfan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8300", "listen address")
	ak := fs.String("access-key", orDefault(getenv("QIANFAN_ACCESS_KEY"), fakeqianfan.DefaultAccessKey), "accepted access key (env QIANFAN_ACCESS_KEY)")
	sk := fs.String("secret-key", orDefault(getenv("QIANFAN_SECRET_KEY"), fakeqianfan.DefaultSecretKey), "its secret key (env QIANFAN_SECRET_KEY)")
	qps := fs.Int("qps", 0, "answer error_code 18 above this many calls per second (0 = off)")
	maxIDs := fs.Int("max-ids", 0, "answer 500001 for longer lists (0 = unlimited)")
	invalid := fs.String("invalid", "", "comma-separated IDs that do not exist (numbers are int IDs)")
	var f fakeqianfan.Faults
	fs.DurationVar(&f.Latency, "latency", 0, "added latency per call")
	fs.Float64Var(&f.Rate503, "rate-503", 0, "rate of HTTP 503")
	fs.Float64Var(&f.Rate336100, "rate-336100", 0, "rate of error_code 336100")
	fs.Float64Var(&f.Rate500000, "rate-500000", 0, "rate of error_code 500000")
	fs.Float64Var(&f.RateReset, "rate-reset", 0, "rate of connection resets before deleting")
	fs.Float64Var(&f.RateDropAfterDelete, "rate-drop", 0, "rate of dropped answers after deleting")
	fs.Int64Var(&f.Seed, "seed", 1, "fault generator seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ids []any
	for _, s := range strings.Split(*invalid, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			ids = append(ids, n)
		} else {
			ids = append(ids, s)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv := &http.Server{
		Handler: fakeqianfan.New(fakeqianfan.Config{
			Credentials: map[string]string{*ak: *sk},
			Invalid:     fakeqianfan.InvalidIDs(ids...),
			MaxIDs:      *maxIDs,
			QPS:         *qps,
			Faults:      f,
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log.Info("fake qianfan starting", "addr", ln.Addr().String(), "access_key", *ak, "secret_key", "****",
		"qps", *qps, "max_ids", *maxIDs, "invalid", len(ids), "faults", fmt.Sprintf("%+v", f))
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	log.Info("fake qianfan stopped")
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
