package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/httpapi"
)

// startAPI serves the HTTP API on cfg.APIAddr; stop shuts it down, letting
// requests in flight finish for up to 5 seconds.
func startAPI(cfg config, d deps) (stop func(), err error) {
	api, err := httpapi.New(httpapi.Config{
		Tokens:       cfg.APITokens,
		MaxBodyBytes: cfg.APIMaxBody,
		PendingTTL:   cfg.LedgerTTL,
		Logger:       d.log.With("component", "httpapi"),
	}, httpapi.Deps{Ledger: d.ledger, DeadLetters: deadletter.NewStore(d.rdb), Producer: d.producer, Archive: d.inspector})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("--api-addr: %w", err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http api stopped", "err", err)
		}
	}()
	d.log.Info("http api listening", "addr", ln.Addr().String(), "tokens", len(cfg.APITokens))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}
