package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"sluice/internal/config"
)

// NewClient returns an etcd client for cl: endpoints, TLS and auth. It does not wait for
// a connection; requests fail until etcd answers.
func NewClient(cl *config.Cluster) (*clientv3.Client, error) {
	c := clientv3.Config{
		Endpoints:   cl.Endpoints,
		DialTimeout: cl.DialTimeout.D(),
		Username:    cl.Username,
		Password:    cl.Password,
		Logger:      zap.NewNop(), // the client logs every reconnection attempt; the node reports state itself
		// A keepalive notices a silently dead etcd connection, so the watch resumes elsewhere.
		DialKeepAliveTime:    5 * cl.DialTimeout.D(),
		DialKeepAliveTimeout: cl.DialTimeout.D(),
	}
	var err error
	if c.TLS, err = clientTLS(cl); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

func clientTLS(cl *config.Cluster) (*tls.Config, error) {
	https := false
	for _, e := range cl.Endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if cl.TLS == nil && !https {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	t := cl.TLS
	if t == nil {
		return tc, nil
	}
	tc.ServerName = t.ServerName
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Snapshot reads every object under prefix in one range request: a consistent state at one
// revision.
func Snapshot(ctx context.Context, cli *clientv3.Client, prefix string) (*State, error) {
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read %s from etcd: %w", prefix, err)
	}
	st := NewState()
	st.Rev = resp.Header.Revision
	for _, kv := range resp.Kvs {
		st.Put(strings.TrimPrefix(string(kv.Key), prefix+"/"), &Object{Value: kv.Value, ModRev: kv.ModRevision})
	}
	return st, nil
}
