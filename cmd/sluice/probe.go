package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"sluice/internal/certs"
	"sluice/internal/config"
	"sluice/internal/gateway"
	"sluice/internal/probe"
)

const probeSynopsis = `sluice probe [flags] URL        measure one backend's keep-alive behaviour
       sluice probe [flags] -c FILE    probe every target of a config and flag risky keepalive settings`

// cmdProbe runs `sluice probe`. Exit status: 0 ok; 1 a target could not be probed or (with
// -c) an upstream's keepalive.idle_timeout is not safely below its backend's; 2 usage.
func cmdProbe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	file := fs.String("c", "", "config file: probe every target of every upstream")
	var o probe.Options
	fs.StringVar(&o.Path, "path", probe.DefaultPath, "request path of the probe requests")
	fs.StringVar(&o.Host, "host", "", "Host header (default: the target's host:port)")
	fs.DurationVar(&o.MaxWait, "max-wait", probe.DefaultMaxWait, "longest wait for the backend to close an idle connection")
	fs.IntVar(&o.MaxRequests, "max-requests", probe.DefaultMaxRequests, "requests sent on one connection to find a request limit")
	caFile := fs.String("ca-file", "", "https:// URL: PEM bundle of the CAs to trust (default: the system roots)")
	insecure := fs.Bool("insecure", false, "https:// URL: do not verify the backend's certificate")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "do not print progress to stderr while measuring")
	parallel := fs.Int("parallel", probe.DefaultParallel, "with -c: targets probed at once")
	fraction := fs.Float64("safety-fraction", config.DefaultSafetyFraction, "share of the measured idle timeout to recommend (without -c)")
	pos, code, ok := parseFlags(fs, args, probeSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case *file == "" && len(pos) != 1, *file != "" && len(pos) != 0:
		fmt.Fprintf(stderr, "sluice probe: give exactly one URL, or -c FILE\nusage: %s\n", probeSynopsis)
		return 2
	case o.MaxWait <= 0 || o.MaxRequests <= 0 || *parallel <= 0:
		fmt.Fprintln(stderr, "sluice probe: -max-wait, -max-requests and -parallel must be positive")
		return 2
	case *fraction <= 0 || *fraction >= 1:
		fmt.Fprintln(stderr, "sluice probe: -safety-fraction must be between 0 and 1 (exclusive)")
		return 2
	}
	if !*quiet {
		var mu sync.Mutex
		o.Progress = func(msg string) { // the phases run at once
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "probe: %s\n", msg)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *file != "" {
		// TLS upstreams are probed with the pools' own TLS settings.
		o.UpstreamTLS = gateway.UpstreamTLSConfig
		return probeConfig(ctx, *file, o, *parallel, *asJSON, stdout, stderr)
	}
	addr, path, secure, err := probeTarget(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "sluice probe: %v\n", err)
		return 2
	}
	if path != "" {
		o.Path = path
	}
	if secure {
		host, _, _ := net.SplitHostPort(addr)
		o.TLS = &tls.Config{ServerName: host, InsecureSkipVerify: *insecure, NextProtos: []string{"http/1.1"}}
		if *caFile != "" {
			if o.TLS.RootCAs, err = certs.LoadCAs(*caFile); err != nil {
				fmt.Fprintf(stderr, "sluice probe: -ca-file: %v\n", err)
				return 2
			}
		}
	} else if *caFile != "" || *insecure {
		fmt.Fprintln(stderr, "sluice probe: -ca-file and -insecure need an https:// URL")
		return 2
	}
	res, err := probe.Probe(ctx, addr, o)
	if err != nil {
		fmt.Fprintf(stderr, "sluice probe: %v\n", err)
		return 1
	}
	rec := probe.Recommend(res, *fraction)
	if *asJSON {
		return writeJSON(stdout, stderr, struct {
			Result         *probe.Result        `json:"result"`
			Recommendation probe.Recommendation `json:"recommendation"`
		}{res, rec})
	}
	probe.WriteText(stdout, res, rec, *fraction)
	return 0
}

// probeTarget turns "http://host:port/path", "https://host:port/path" (secure) or
// "host:port" into a dial address and the request path ("" when the URL has none).
func probeTarget(raw string) (addr, path string, secure bool, err error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", "", false, fmt.Errorf("invalid URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", false, fmt.Errorf("%s: only http:// and https:// targets can be probed", u.Scheme)
	case u.Host == "":
		return "", "", false, fmt.Errorf("%q: no host", raw)
	}
	secure = u.Scheme == "https"
	addr = u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	path = u.RequestURI()
	if u.Path == "" && u.RawQuery == "" {
		path = ""
	}
	return addr, path, secure, nil
}

func probeConfig(ctx context.Context, file string, o probe.Options, parallel int, asJSON bool, stdout, stderr io.Writer) int {
	cfg, err := config.Load(file)
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	checks := probe.CheckConfig(ctx, cfg, o, parallel)
	failed := false
	for _, uc := range checks {
		failed = failed || uc.Failed
	}
	code := 0
	if failed {
		code = 1
	}
	if asJSON {
		if c := writeJSON(stdout, stderr, struct {
			Config    string                `json:"config"`
			Failed    bool                  `json:"failed"`
			Upstreams []probe.UpstreamCheck `json:"upstreams"`
		}{file, failed, checks}); c != 0 {
			return c
		}
		return code
	}
	probe.WriteCheckText(stdout, checks)
	return code
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "sluice probe: write JSON: %v\n", err)
		return 1
	}
	return 0
}
