// Command probe is the health check of the container image that
// deploy/Dockerfile builds, whose final stage holds no shell, curl or
// wget: `probe URL` GETs URL and exits with status 0 when the answer is
// 2xx, 1 when it is anything else or does not come within -timeout, and
// 2 on a bad command line. It ignores proxy settings in the environment.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "longest wait for the whole answer")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: probe [-timeout D] URL\n\nExits 0 when a GET of URL answers 2xx, else 1.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		if err == nil {
			fs.Usage()
		}
		return 2
	}
	url := fs.Arg(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 2
	}
	hc := &http.Client{Transport: &http.Transport{}} // no Proxy: not from the environment either
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "probe: %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
