package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
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
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ferry serve [-config FILE] [-listen ADDR] [-check] [-self-signed]\n\nRuns the gateway. Without -config it runs the embedded default; it never reads\na config file it was not given.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
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
		fmt.Fprintf(stdout, "%s: ok (%d services, %d tokens)\n", name, len(cfg.Services), len(cfg.Tokens))
		fmt.Fprintf(stdout, "%s: %s\n", name, cfg.BudgetSummary())
		return 0
	}
	logger := log.New(stderr, "ferry: ", log.LstdFlags)
	logger.Print(cfg.BudgetSummary())
	srv, err := gateway.New(cfg, &gateway.Options{Log: logger})
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
		fmt.Fprintln(stderr, "ferry serve:", err)
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
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "ferry: serving %s://%s/ (tunnel %s://%s%s, %s)\n", scheme, addr, wsScheme, addr, cfg.Server.TunnelPath, name)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			fmt.Fprintln(stderr, "ferry serve: admin:", err)
			return 1
		}
		admin := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(aln)
		defer admin.Close()
		fmt.Fprintf(stdout, "ferry: admin endpoints at http://%s/metrics and /readyz\n", aln.Addr())
	}
	select {
	case err := <-errc:
		if err != nil {
			fmt.Fprintln(stderr, "ferry serve:", err)
			return 1
		}
		return 0
	case <-ctx.Done():
	}
	stop()
	logger.Printf("shutting down: draining streams for up to %s", cfg.Server.DrainTimeout.Duration)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Server.DrainTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 1
	}
	<-errc
	logger.Printf("stopped")
	return 0
}
