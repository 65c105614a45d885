package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"sluice/internal/config"
)

const healthSynopsis = "sluice health [-ready] [-c FILE | -admin ADDRESS] [-timeout 3s]"

// cmdHealth asks a running gateway's admin API whether it is live (/admin/healthz) or, with
// -ready, ready (/admin/readyz), and exits 0 when it says so, 1 otherwise. Container images
// without a shell or curl use it as their health check.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	ready := fs.Bool("ready", false, "ask /admin/readyz (config loaded, listeners bound, not draining) instead of /admin/healthz")
	file := fs.String("c", "", "config file whose admin address (and api_key) to use")
	addr := fs.String("admin", config.DefaultAdminAddress, "admin listener address, host:port (ignored with -c)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	pos, code, ok := parseFlags(fs, args, healthSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sluice health: unexpected arguments %q\nusage: %s\n", pos, healthSynopsis)
		return 2
	}
	key := ""
	if *file != "" {
		cfg, err := config.Load(*file)
		if err != nil {
			printConfigErr(stderr, err)
			return 1
		}
		if !cfg.Admin.IsEnabled() {
			fmt.Fprintf(stderr, "sluice health: %s turns the admin listener off (admin.enabled: false)\n", *file)
			return 1
		}
		*addr, key = cfg.Admin.Address, cfg.Admin.APIKey
	}
	path := "/admin/healthz"
	if *ready {
		path = "/admin/readyz"
	}
	host := *addr
	if strings.HasPrefix(host, ":") || strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1" + host[strings.LastIndex(host, ":"):] // all interfaces: ask loopback
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "sluice health: %v\n", err)
		return 2
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "sluice health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var body struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sluice health: %s answered %d %s %s\n", path, resp.StatusCode, body.Status, strings.Join(body.Reasons, "; "))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", path, body.Status)
	return 0
}
