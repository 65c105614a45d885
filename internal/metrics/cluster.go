package metrics

import "github.com/prometheus/client_golang/prometheus"

// Cluster mode metric names (internal/cluster). docs/metrics.md documents each.
const (
	nameClusterUp            = "sluice_cluster_etcd_up"
	nameClusterRevision      = "sluice_cluster_revision"
	nameClusterApplied       = "sluice_cluster_changes_applied_total"
	nameClusterRejected      = "sluice_cluster_changes_rejected_total"
	nameClusterWatchRestarts = "sluice_cluster_watch_restarts_total"
	nameClusterSnapshots     = "sluice_cluster_snapshots_total"
	nameClusterWrites        = "sluice_cluster_writes_total"
)

// Cluster is the cluster mode's metrics. Create it with [Metrics.Cluster].
type Cluster struct {
	// Up is 1 while etcd answers the node's probe, 0 while it does not.
	Up prometheus.Gauge
	// Revision is the etcd revision of the serving config.
	Revision prometheus.Gauge
	// Applied and Rejected count the states from etcd applied and refused as invalid.
	Applied  prometheus.Counter
	Rejected prometheus.Counter
	// WatchRestarts counts watches begun again after they ended (an error or a compaction).
	WatchRestarts prometheus.Counter
	// Snapshots counts full reads of the prefix (start, compaction, reconnection).
	Snapshots prometheus.Counter
	// Writes counts admin API and CLI writes by kind, operation and result.
	Writes *prometheus.CounterVec
}

// Cluster registers the cluster mode's metrics on m's registry and returns them. Call it
// once per Metrics.
func (m *Metrics) Cluster() *Cluster {
	c := &Cluster{
		Up:            prometheus.NewGauge(prometheus.GaugeOpts{Name: nameClusterUp, Help: "1 while etcd answers this node, 0 while it does not (the node keeps serving its last good config)."}),
		Revision:      prometheus.NewGauge(prometheus.GaugeOpts{Name: nameClusterRevision, Help: "The etcd revision of the serving config."}),
		Applied:       prometheus.NewCounter(prometheus.CounterOpts{Name: nameClusterApplied, Help: "States read from etcd and applied."}),
		Rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: nameClusterRejected, Help: "States read from etcd and refused as invalid (the last good config kept serving)."}),
		WatchRestarts: prometheus.NewCounter(prometheus.CounterOpts{Name: nameClusterWatchRestarts, Help: "Watches of the etcd prefix begun again after they ended."}),
		Snapshots:     prometheus.NewCounter(prometheus.CounterOpts{Name: nameClusterSnapshots, Help: "Full reads of the etcd prefix (start, compaction)."}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameClusterWrites, Help: "Admin API writes to etcd, by kind, operation and result."},
			[]string{"kind", "op", "result"}),
	}
	m.reg.MustRegister(c.Up, c.Revision, c.Applied, c.Rejected, c.WatchRestarts, c.Snapshots, c.Writes)
	return c
}
