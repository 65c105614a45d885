package gateway

import "sluice/internal/admin"

// clusterBox holds the admin.Cluster interface for an atomic pointer.
type clusterBox struct{ c admin.Cluster }

// SetCluster puts the gateway in cluster mode for the admin API: c's state shows in
// /admin/status and c serves the write API. nil returns it to file mode (read-only).
func (g *Gateway) SetCluster(c admin.Cluster) {
	if c == nil {
		g.clusterMode.Store(nil)
		return
	}
	g.clusterMode.Store(&clusterBox{c})
}

// Cluster implements admin.ClusterSource.
func (v adminView) Cluster() admin.Cluster {
	if b := v.g.clusterMode.Load(); b != nil {
		return b.c
	}
	return nil
}

var _ admin.ClusterSource = adminView{}
