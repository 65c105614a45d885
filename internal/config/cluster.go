package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Cluster turns on cluster mode: the node's file keeps what is node-local (listeners, admin,
// log, cluster), and routes, upstreams and the shared settings come from etcd, one key per
// object under Prefix. See docs/cluster.md. Omitted: file mode, nothing else is needed.
type Cluster struct {
	// Endpoints are the etcd client URLs, such as "http://10.0.0.5:2379" (https:// with TLS).
	// At least one is required.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the etcd key prefix of this gateway cluster's objects. Default "/sluice".
	// Several clusters can share an etcd under different prefixes.
	Prefix string `yaml:"prefix"`
	// Username and Password authenticate to etcd (etcd's own users). Default "": no auth.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures TLS to etcd (CA to verify etcd, and a client certificate for mutual TLS).
	// Omitted: the system roots when an endpoint is https://.
	TLS *ClusterTLS `yaml:"tls"`
	// DialTimeout bounds connecting to etcd and each request made at start-up. Default 2s;
	// 0 is invalid.
	DialTimeout *Duration `yaml:"dial_timeout"`
	// LastGood is the file the last config applied from etcd is written to (atomically), and
	// served from when the node starts while etcd is unreachable. Default: the node's config
	// file path with ".last-good.json" appended.
	LastGood string `yaml:"last_good"`
}

// ClusterTLS is TLS to etcd.
type ClusterTLS struct {
	// CAFile is a PEM bundle of the CAs that sign etcd's certificates. Default "": system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key (PEM), for etcd's
	// --client-cert-auth. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in etcd's certificate. Default: the endpoint's host.
	ServerName string `yaml:"server_name"`
}

// Cluster mode defaults.
const (
	DefaultClusterPrefix      = "/sluice"
	DefaultClusterDialTimeout = Duration(2 * time.Second)
	// LastGoodSuffix is appended to the node's config file path for the default LastGood.
	LastGoodSuffix = ".last-good.json"
)

func defaultCluster(c *Config) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	setIfZero(&cl.Prefix, DefaultClusterPrefix)
	setIfNil(&cl.DialTimeout, DefaultClusterDialTimeout)
	if cl.LastGood == "" && c.File != "" && !strings.HasPrefix(c.File, "etcd:") {
		cl.LastGood = c.File + LastGoodSuffix
	}
}

func (c *Config) validateCluster(p *problems) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	if len(cl.Endpoints) == 0 {
		p.add("cluster.endpoints", "at least one etcd endpoint is required, such as \"http://127.0.0.1:2379\"")
	}
	for i, e := range cl.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(fmt.Sprintf("cluster.endpoints[%d]", i), "%q: want a URL such as \"http://127.0.0.1:2379\"", e)
		}
	}
	if cl.Prefix != "" && (!strings.HasPrefix(cl.Prefix, "/") || strings.HasSuffix(cl.Prefix, "/")) {
		p.add("cluster.prefix", "%q: must start with \"/\" and not end with one, such as \"/sluice\"", cl.Prefix)
	}
	if cl.Password != "" && cl.Username == "" {
		p.add("cluster.password", "a password needs a username")
	}
	if cl.DialTimeout != nil && *cl.DialTimeout <= 0 {
		p.add("cluster.dial_timeout", "must be positive")
	}
	if t := cl.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		p.add("cluster.tls", "cert_file and key_file go together")
	}
}
