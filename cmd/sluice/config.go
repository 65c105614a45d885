package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/admin"
	"sluice/internal/cluster"
	"sluice/internal/config"
)

const configSynopsis = `sluice config push FILE | pull [-secrets] | diff FILE   [-c NODE_FILE | -endpoints URLS -prefix PREFIX]`

// cmdConfig runs `sluice config push|pull|diff`: the cluster's config in etcd against a
// config file. The etcd connection comes from a node's file (-c) or from flags.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "push" && args[0] != "pull" && args[0] != "diff") {
		fmt.Fprintf(stderr, "usage: %s\n", configSynopsis)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("config "+sub, flag.ContinueOnError)
	node := fs.String("c", "", "a node's config file: its cluster block says where etcd is")
	endpoints := fs.String("endpoints", "", "etcd client URLs, comma-separated (instead of -c)")
	prefix := fs.String("prefix", config.DefaultClusterPrefix, "etcd key prefix (with -endpoints)")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the whole command")
	secrets := fs.Bool("secrets", false, "pull: print consumers' credentials and plugin secrets instead of "+admin.Redacted)
	pos, code, ok := parseFlags(fs, args[1:], configSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	if (sub == "pull") != (len(pos) == 0) || len(pos) > 1 {
		fmt.Fprintf(stderr, "usage: %s\n", configSynopsis)
		return 2
	}
	cl, err := clusterFlags(*node, *endpoints, *prefix)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config:", err)
		return 2
	}
	cli, err := cluster.NewClient(cl)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config:", err)
		return 1
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cur, err := cluster.Snapshot(ctx, cli, cl.Prefix)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config:", err)
		return 1
	}
	if sub == "pull" {
		out, err := cluster.PullYAML(cur, *secrets)
		if err != nil {
			fmt.Fprintln(stderr, "sluice config pull:", err)
			return 1
		}
		fmt.Fprintf(stdout, "# sluice config pull: etcd prefix %s at revision %d\n", cl.Prefix, cur.Rev)
		stdout.Write(out)
		return 0
	}
	return pushOrDiff(ctx, sub, pos[0], cli, cl.Prefix, cur, stdout, stderr)
}

func pushOrDiff(ctx context.Context, sub, file string, cli *clientv3.Client, prefix string, cur *cluster.State, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config:", err)
		return 1
	}
	err = cluster.CheckNotRedacted(file, data)
	var (
		want  *cluster.State
		local *cluster.Local
	)
	if err == nil {
		want, local, err = cluster.FileState(file, data)
	}
	if err == nil {
		_, err = cluster.Assemble(local, prefix, want) // exactly what every node will check
	}
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	changes := cluster.Plan(cur, want)
	for _, c := range changes {
		sign := map[string]string{"create": "+", "replace": "~", "delete": "-"}[c.Op]
		fmt.Fprintf(stdout, "%s %s/%s\n", sign, prefix, c.Rel)
	}
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "etcd (revision %d) already matches %s\n", cur.Rev, file)
		return 0
	}
	if sub == "diff" {
		fmt.Fprintf(stdout, "%d change(s) between etcd (revision %d) and %s\n", len(changes), cur.Rev, file)
		return 1
	}
	rev, err := cluster.Push(ctx, cli, prefix, pusher(), cur, changes) // cluster.ErrConflict: etcd changed meanwhile
	if err != nil {
		fmt.Fprintln(stderr, "sluice config push:", err)
		return 1
	}
	fmt.Fprintf(stdout, "pushed %d change(s) in one transaction: revision %d -> %d\n", len(changes), cur.Rev, rev)
	return 0
}

// pusher names who pushes, for the fence key: user@host.
func pusher() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	return "sluice config push " + user + "@" + host
}

// clusterFlags gives the etcd connection from a node's file or from -endpoints/-prefix.
func clusterFlags(node, endpoints, prefix string) (*config.Cluster, error) {
	if node != "" {
		cfg, err := config.Load(node)
		if err != nil {
			return nil, err
		}
		if cfg.Cluster == nil {
			return nil, fmt.Errorf("%s has no cluster block", node)
		}
		return cfg.Cluster, nil
	}
	if endpoints == "" {
		return nil, errors.New("say where etcd is: -c NODE_FILE, or -endpoints http://HOST:2379")
	}
	d := config.DefaultClusterDialTimeout
	return &config.Cluster{Endpoints: strings.Split(endpoints, ","), Prefix: prefix, DialTimeout: &d}, nil
}
