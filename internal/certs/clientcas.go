package certs

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ClientCAs is the client CA bundle of a listener under mutual TLS (client_ca_file), watched
// as its certificates are: a changed file verifies client certificates from the next
// handshake on, resumed sessions included (crypto/tls checks a resumed session's chain
// against the pool of the handshake's config), and the open connections' at their next
// request (OnReload), so that a CA taken out of the bundle stops being trusted without a
// config reload. A file that does not load keeps the bundle in force; the failure is logged
// and counted once per change. Safe for concurrent use: Pool runs on every handshake,
// Reload on the watcher's goroutine.
type ClientCAs struct {
	file string
	log  *slog.Logger
	obs  Observer

	mu         sync.Mutex // serialises Reload, guards onReload
	stamp, bad fileStamp  // the file in force, and the last one refused
	pool       atomic.Pointer[x509.CertPool]
	onReload   func() // run after a changed bundle was put in force (OnReload)
}

// NewClientCAs loads the bundle of file; the error names the file.
func NewClientCAs(file string, log *slog.Logger, obs Observer) (*ClientCAs, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &ClientCAs{file: file, log: log.With("component", "certs"), obs: obs}
	b, st, err := readStamped(file)
	if err != nil {
		return nil, err
	}
	pool, err := parseCAs(file, b)
	if err != nil {
		return nil, err
	}
	c.stamp = st
	c.pool.Store(pool)
	return c, nil
}

// Pool is the bundle in force.
func (c *ClientCAs) Pool() *x509.CertPool { return c.pool.Load() }

// OnReload makes f run each time Reload puts a changed bundle in force, after Pool returns
// it (the listener then re-checks its open connections: server.Settings.ClientCAs); it
// replaces the f before. f runs on the watcher's goroutine and must not call Reload.
func (c *ClientCAs) OnReload(f func()) {
	c.mu.Lock()
	c.onReload = f
	c.mu.Unlock()
}

// Reload re-reads the file and reports whether a changed bundle was put in force; err says
// why a changed file was refused (the bundle in force stays).
func (c *ClientCAs) Reload() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, st, err := readStamped(c.file)
	if st == c.stamp || st == c.bad {
		return false, nil // unchanged, or its failure reported already
	}
	var pool *x509.CertPool
	if err == nil {
		pool, err = parseCAs(c.file, b)
	}
	if c.obs != nil {
		c.obs.CertReloaded(c.file, err)
	}
	if err != nil {
		c.bad = st
		c.log.Warn("client CA bundle reload refused; the previous one keeps verifying", "client_ca_file", c.file, "err", err)
		return false, err
	}
	c.stamp, c.bad = st, fileStamp{}
	c.pool.Store(pool)
	if c.onReload != nil {
		c.onReload()
	}
	c.log.Info("client CA bundle reloaded", "client_ca_file", c.file)
	return true, nil
}

// Watch polls the file every interval and reloads it when it changed, until ctx ends.
func (c *ClientCAs) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() { c.Reload() })
}

// parseCAs reads the PEM bundle b of file.
func parseCAs(file string, b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}
