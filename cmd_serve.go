package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "the gateway's TOML config `FILE` (default: the embedded default, a public echo service on 127.0.0.1:8080)")
	listen := fs.String("listen", "", "listen on `ADDR` instead of [server] listen (port 0 picks a free port)")
	check := fs.Bool("check", false, "validate the config, print the result and exit")
	selfSigned := fs.Bool("self-signed", false, "serve wss:// with a fresh self-signed certificate for local use; prints its SHA-256 fingerprint for clients' -pin")
	watch := fs.Bool("watch", false, "reload the config when its file (or its JWT key file) changes, as SIGHUP does")
	logFormat := fs.String("log-format", "", "log lines as `FORMAT` \"text\" or \"json\" (default: [log] format)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ferry serve [-config FILE] [-listen ADDR] [-check] [-self-signed] [-watch] [-log-format text|json]\n\nRuns the gateway. Without -config it runs the embedded default; it never reads\na config file it was not given. SIGHUP (or, with -watch, a change to the file)\nreloads the config; SIGTERM drains and stops (a second SIGTERM stops at once).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h: the usage was asked for
		}
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if *logFormat != "" && !slices.Contains(config.LogFormats, *logFormat) {
		fmt.Fprintf(stderr, "ferry serve: -log-format %q: want \"text\" or \"json\"\n", *logFormat)
		return 2
	}
	if *watch && *file == "" {
		fmt.Fprintln(stderr, "ferry serve: -watch needs -config FILE")
		return 2
	}
	var cfg *config.Config
	if *file == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(*file); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if *listen != "" {
		if _, _, err := net.SplitHostPort(*listen); err != nil {
			fmt.Fprintf(stderr, "ferry serve: -listen %q: %v\n", *listen, err)
			return 2
		}
		cfg.Server.Listen = *listen
	}
	name := cfg.File
	if name == "" {
		name = "embedded default config"
	}
	if *check {
		// What serve reads besides the config (the JWT secret or keys, the
		// TLS files) is read here too, so -check passes only what serve
		// starts with.
		srv, err := gateway.New(cfg, nil)
		if err == nil {
			_, err = srv.TLSConfig()
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		for _, w := range srv.Warnings(wctx) {
			fmt.Fprintf(stderr, "%s: warning: %s\n", name, w)
		}
		cancel()
		fmt.Fprintf(stdout, "%s: ok (%d services, %d tokens)\n", name, len(cfg.Services), len(cfg.Tokens))
		fmt.Fprintf(stdout, "%s: %s\n", name, cfg.BudgetSummary())
		return 0
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Log.SlogLevel())
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if cfg.Log.Format == "json" {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	logger := slog.New(handler)
	logger.Info("memory budget", "summary", cfg.BudgetSummary())
	srv, err := gateway.New(cfg, &gateway.Options{Log: logger, Level: level})
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 1
	}
	tlsCfg, err := srv.TLSConfig()
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "ferry serve: %s: %v\n", name, err)
		return 1
	}
	if *selfSigned {
		host, _, _ := net.SplitHostPort(cfg.Server.Listen)
		cert, fp, err := gateway.SelfSigned(host)
		if err != nil {
			ln.Close()
			fmt.Fprintln(stderr, "ferry serve:", err)
			return 1
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{cert}}
		fmt.Fprintf(stdout, "ferry: self-signed certificate, SHA-256 fingerprint %s\n", fp)
		fmt.Fprintf(stdout, "ferry: clients connect with -pin %s\n", fp)
	}
	scheme, wsScheme := "http", "ws"
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme, wsScheme = "https", "wss"
	}
	var admin *http.Server
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			fmt.Fprintln(stderr, "ferry serve: admin.listen:", err)
			return 1
		}
		admin = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(aln)
		defer admin.Close()
		fmt.Fprintf(stdout, "ferry: admin endpoints at http://%s/metrics, /healthz and /readyz\n", aln.Addr())
	}
	addr := ln.Addr().String()
	logger.Info("serving", "listen", addr, "tunnel", wsScheme+"://"+addr+cfg.Server.TunnelPath, "config", name)
	fmt.Fprintf(stdout, "ferry: serving %s://%s/ (tunnel %s://%s%s, %s)\n", scheme, addr, wsScheme, addr, cfg.Server.TunnelPath, name)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var changed <-chan struct{}
	if *watch {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		changed = watchFiles(wctx, watchedFiles(*file, cfg), time.Second)
	}
	reload := func(trigger string) {
		if *file == "" {
			logger.Warn("reload: nothing to reload: the gateway runs the embedded default config", "trigger", trigger)
			return
		}
		_, _ = srv.ReloadFile(*file, *listen, trigger)
	}
	for stopping := false; !stopping; {
		select {
		case err := <-errc:
			if err != nil {
				fmt.Fprintln(stderr, "ferry serve:", err)
				return 1
			}
			return 0
		case <-ctx.Done():
			stopping = true
		case <-changed:
			reload("file changed")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload("SIGHUP")
				continue
			}
			stopping = true
		}
	}
	// Drain: a second signal (or the caller's ctx) stops at once.
	dctx, cancel := context.WithTimeout(context.Background(), srv.DrainTimeout())
	defer cancel()
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue
				}
				logger.Warn("second signal: closing every session now", "signal", sig.String())
				cancel()
			case <-dctx.Done():
			}
			return
		}
	}()
	if err := srv.Shutdown(dctx); err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 1
	}
	<-errc
	logger.Info("stopped")
	return 0
}

// watchedFiles are the files -watch reloads on: the config and the JWT
// key file it names (a rotated key needs no edit of the config).
func watchedFiles(file string, cfg *config.Config) []string {
	files := []string{file}
	for _, f := range []string{cfg.Auth.JWTSecretFile, cfg.Auth.JWTPublicKeyFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// watchFiles polls files every interval and sends on the returned channel
// when any of their contents changed (a SHA-256 of each, so a touch alone
// or an editor's rewrite of the same bytes reloads nothing). Polling
// needs no dependency and sees every kind of replacement (rename, write
// in place, a symlink swapped by a config manager).
func watchFiles(ctx context.Context, files []string, interval time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	sum := func() [32]byte {
		h := sha256.New()
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintf(h, "\x00missing %s: %v\x00", f, errors.Is(err, fs.ErrNotExist))
				continue
			}
			fmt.Fprintf(h, "%d\x00", len(b))
			h.Write(b)
		}
		var out [32]byte
		h.Sum(out[:0])
		return out
	}
	last := sum()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if now := sum(); now != last {
				last = now
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}
