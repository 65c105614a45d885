package main

import (
	"context"
	"os"

	"sluice/internal/cluster"
	"sluice/internal/config"
)

// runCluster serves in cluster mode: the node's file gives listeners, admin, log and the
// cluster block; routes, upstreams and shared settings come from etcd (docs/cluster.md).
func (r *runner) runCluster(cfg *config.Config) int {
	r.cluster = true
	data, err := os.ReadFile(r.file)
	if err != nil {
		r.log.Error("cannot start", "err", err)
		return 1
	}
	local, err := cluster.ReadLocal(r.file, data)
	if err != nil {
		printConfigErr(r.stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Options{Local: local, Cluster: cfg.Cluster, Apply: r.gw.Apply, ApplyChange: r.gw.ApplyChange,
		Log: r.log, Metrics: r.gw.Metrics().Cluster()})
	if err != nil {
		r.log.Error("cannot start", "err", err)
		return 1
	}
	r.gw.SetCluster(node)
	st := node.Status()
	r.log.Info("sluice started in cluster mode", "version", currentBuild().Version, "node_file", r.file,
		"endpoints", cfg.Cluster.Endpoints, "prefix", cfg.Cluster.Prefix, "source", st.Source, "revision", st.Revision)
	return r.serve()
}
