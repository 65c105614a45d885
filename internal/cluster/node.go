package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/config"
	"sluice/internal/metrics"
)

// Options configure a [Node].
type Options struct {
	// Local is the node-local part of the node's file; Cluster its cluster block (defaults
	// applied).
	Local   *Local
	Cluster *config.Cluster
	// Apply hands a valid config to the gateway; an error refuses the state like an invalid one.
	Apply func(*config.Config) error
	// ApplyChange, when set, hands over a config built from the last applied one (from) by
	// a change of some objects (ch), so that the gateway rebuilds only what ch touches
	// (gateway.ApplyChange). Unset: Apply.
	ApplyChange func(from, cfg *config.Config, ch config.Change) error
	Log         *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Cluster
	// ProbeInterval is how often etcd is asked whether it answers. Default 1s.
	ProbeInterval time.Duration
	// BackoffMin and BackoffMax bound the wait before a failed snapshot or watch is tried
	// again (doubling, with jitter-free steps). Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
}

// Node keeps a gateway in step with the objects in etcd: one client, one watch.
type Node struct {
	opt    Options
	prefix string
	cli    atomic.Pointer[clientv3.Client] // nil until connect succeeds
	log    *slog.Logger

	// Owned by the run goroutine (and Start before it): the last state seen, valid or not.
	seen         *State
	needSnapshot bool
	applied      *applied // the last state applied (incremental.go)

	incremental atomic.Int64 // changes applied object by object, for tests

	// The newest applied state not yet on disk, and the place of the one on disk in the
	// order of applied states (lastGoodLoop).
	appliedSeq   int64 // owned by the run goroutine
	lastGood     atomic.Pointer[pendingLastGood]
	lastGoodKick chan struct{}
	lastGoodMu   sync.Mutex
	lastGoodSeq  int64

	mu     sync.Mutex
	st     Status
	closed bool // the node's context ended: no new client
}

// Status is the node's view of the cluster, for /admin/status.
type Status struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	// EtcdUp says whether etcd answered the last probe; EtcdError is why not.
	EtcdUp      bool      `json:"etcd_up"`
	EtcdError   string    `json:"etcd_error,omitempty"`
	LastContact time.Time `json:"last_contact"`
	// Source is where the serving config came from: "etcd", or "last_good_file" when the
	// node started while etcd was unreachable and has not read it since.
	Source   string `json:"source"`
	LastGood string `json:"last_good_file"`
	// Revision is the etcd revision of the serving config; SeenRevision the newest state
	// read (larger when that state was refused).
	Revision     int64 `json:"revision"`
	SeenRevision int64 `json:"seen_revision"`
	Objects      int   `json:"objects"`
	// Rejected is the most recent refused state, if any since the last applied one.
	Rejected      *Rejection `json:"rejected,omitempty"`
	Rejections    int64      `json:"rejections_total"`
	WatchRestarts int64      `json:"watch_restarts_total"`
	Snapshots     int64      `json:"snapshots_total"`
}

// Rejection is a state read from etcd and refused.
type Rejection struct {
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	Errors   []string  `json:"errors"`
}

// Start connects to etcd, applies the current state (or, when etcd does not answer within
// the dial timeout, the last-good file) and keeps the gateway in step until ctx ends. It
// fails only when neither etcd nor a last-good file gives a valid config.
func Start(ctx context.Context, opt Options) (*Node, error) {
	if opt.ProbeInterval <= 0 {
		opt.ProbeInterval = time.Second
	}
	if opt.BackoffMin <= 0 {
		opt.BackoffMin = 100 * time.Millisecond
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = 5 * time.Second
	}
	n := &Node{opt: opt, prefix: opt.Cluster.Prefix, log: opt.Log.With("component", "cluster"), lastGoodKick: make(chan struct{}, 1)}
	n.st = Status{Endpoints: opt.Cluster.Endpoints, Prefix: n.prefix, LastGood: opt.Cluster.LastGood}
	if err := n.first(ctx); err != nil {
		if cli := n.client(); cli != nil {
			cli.Close()
		}
		return nil, err
	}
	go n.probe(ctx)
	go n.run(ctx)
	go n.lastGoodLoop(ctx)
	context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		if cli := n.client(); cli != nil {
			cli.Close()
		}
	})
	return n, nil
}

// connect creates the node's etcd client. With a username it fails while etcd does not
// answer (the client fetches its auth token when it is created), so the node starts
// without one and run keeps trying.
func (n *Node) connect() error {
	cli, err := NewClient(n.opt.Cluster)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		cli.Close()
		return errors.New("node stopped")
	}
	n.cli.Store(cli)
	return nil
}

// client returns the node's etcd client, nil until one could be created.
func (n *Node) client() *clientv3.Client { return n.cli.Load() }

// first applies etcd's state, or the last-good file when etcd does not answer.
func (n *Node) first(ctx context.Context) error {
	err := n.connect()
	var st *State
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, n.opt.Cluster.DialTimeout.D())
		st, err = n.snapshot(sctx)
		cancel()
	}
	if err == nil {
		n.setUp(true, nil)
		if err = n.handle(st, true); err == nil {
			return nil
		}
		n.log.Error("the state in etcd is invalid; trying the last good config", "revision", st.Rev, "err", err)
	} else {
		n.setUp(false, err)
		n.log.Warn("etcd does not answer; trying the last good config", "endpoints", n.opt.Cluster.Endpoints, "err", err)
	}
	lg, written, lerr := readLastGood(n.opt.Cluster.LastGood, n.prefix)
	if lerr != nil {
		return fmt.Errorf("no config to serve: etcd: %w; %w", err, lerr)
	}
	cfg, aerr := Assemble(n.opt.Local, n.prefix, lg)
	if aerr == nil {
		aerr = n.opt.Apply(cfg)
	}
	if aerr != nil {
		return fmt.Errorf("no config to serve: etcd: %w; last good config %s: %w", err, n.opt.Cluster.LastGood, aerr)
	}
	n.log.Warn("serving the last good config from disk until etcd answers", "file", n.opt.Cluster.LastGood,
		"revision", lg.Rev, "written", written)
	n.mu.Lock()
	n.st.Source, n.st.Revision, n.st.Objects = "last_good_file", lg.Rev, lg.Len()
	n.mu.Unlock()
	n.needSnapshot = true
	return nil
}

func (n *Node) snapshot(ctx context.Context) (*State, error) {
	if m := n.opt.Metrics; m != nil {
		m.Snapshots.Inc()
	}
	n.mu.Lock()
	n.st.Snapshots++
	n.mu.Unlock()
	return Snapshot(ctx, n.client(), n.prefix)
}

// run keeps the node in step: a snapshot when needed, then a watch from the revision after
// it; when the watch ends, it begins again after a backoff.
func (n *Node) run(ctx context.Context) {
	backoff := n.opt.BackoffMin
	for ctx.Err() == nil {
		if n.client() == nil {
			if err := n.connect(); err != nil {
				n.setUp(false, err)
				n.sleep(ctx, &backoff)
				continue
			}
		}
		if n.needSnapshot {
			st, err := n.snapshot(ctx)
			if err != nil {
				n.setUp(false, err)
				n.sleep(ctx, &backoff)
				continue
			}
			n.setUp(true, nil)
			n.handle(st, true)
			n.needSnapshot = false
		}
		got, err := n.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = n.opt.BackoffMin
		}
		n.countRestart()
		if errors.Is(err, errCompacted) {
			n.log.Warn("the watched revision was compacted; reading a fresh snapshot", "revision", n.seen.Rev)
			n.needSnapshot = true
			backoff = n.opt.BackoffMin
			continue
		}
		n.log.Warn("etcd watch ended; resuming from the last revision", "revision", n.seen.Rev, "err", err, "backoff", backoff)
		n.sleep(ctx, &backoff)
	}
}

var errCompacted = errors.New("revision compacted")

// beforeWatch, when set (by tests only), runs before each watch starts: a test writes there
// to prove that a write between the snapshot and the watch is not lost.
var beforeWatch atomic.Pointer[func()]

// watch applies every change after n.seen.Rev until the watch ends. Each response (one
// write, or one transaction) is applied as one state.
func (n *Node) watch(ctx context.Context) (got bool, err error) {
	if f := beforeWatch.Load(); f != nil {
		(*f)()
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := n.client().Watch(wctx, n.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(n.seen.Rev+1))
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return got, errCompacted
		}
		if err := resp.Err(); err != nil {
			return got, err
		}
		got = true
		if len(resp.Events) == 0 {
			continue
		}
		n.setUp(true, nil)
		st := n.seen.Clone()
		for _, ev := range resp.Events {
			rel := strings.TrimPrefix(string(ev.Kv.Key), n.prefix+"/")
			if ev.Type == clientv3.EventTypeDelete {
				st.Put(rel, nil)
			} else {
				st.Put(rel, &Object{Value: ev.Kv.Value, ModRev: ev.Kv.ModRevision})
			}
			st.Rev = max(st.Rev, ev.Kv.ModRevision)
		}
		n.handle(st, false)
	}
	return got, errors.New("watch channel closed")
}

// handle validates st and applies it, or refuses it. A snapshot (whole) is validated as a
// whole; a watched change may be validated object by object (see build).
func (n *Node) handle(st *State, whole bool) error {
	n.seen = st
	_, apply, err := n.build(st, whole)
	if err == nil {
		err = apply()
	}
	st.parent, st.touched = nil, nil // taken: the states before may go
	n.mu.Lock()
	n.st.SeenRevision = st.Rev
	if err != nil {
		n.st.Rejections++
		n.st.Rejected = &Rejection{Revision: st.Rev, Time: time.Now().UTC(), Errors: errorLines(err)}
		n.mu.Unlock()
		if m := n.opt.Metrics; m != nil {
			m.Rejected.Inc()
		}
		n.log.Error("config from etcd refused; the last good config keeps serving", "revision", st.Rev, "err", err.Error())
		return err
	}
	n.st.Rejected = nil
	n.st.Source, n.st.Revision, n.st.Objects = "etcd", st.Rev, st.Len()
	n.mu.Unlock()
	if m := n.opt.Metrics; m != nil {
		m.Applied.Inc()
		m.Revision.Set(float64(st.Rev))
	}
	n.log.Info("config from etcd applied", "revision", st.Rev, "objects", st.Len())
	n.appliedSeq++
	pending := &pendingLastGood{st: st, seq: n.appliedSeq}
	if whole {
		n.saveLastGood(pending) // a snapshot: on disk before the node goes on
	} else {
		n.lastGood.Store(pending) // a watched change: written by lastGoodLoop
		select {
		case n.lastGoodKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// pendingLastGood is an applied state and its place in the order of applied states.
type pendingLastGood struct {
	st  *State
	seq int64
}

// saveLastGood writes an applied state to the last-good file, if one is configured and no
// later state was written already.
func (n *Node) saveLastGood(pl *pendingLastGood) {
	n.lastGoodMu.Lock()
	defer n.lastGoodMu.Unlock()
	if p := n.opt.Cluster.LastGood; p != "" && pl.seq > n.lastGoodSeq {
		if err := writeLastGood(p, n.prefix, pl.st); err != nil {
			n.log.Error("cannot write the last good config", "file", p, "err", err)
			return
		}
		n.lastGoodSeq = pl.seq
	}
}

// lastGoodEvery is the least time between two writes of the last-good file for watched
// changes: the changes of a burst are one write of the newest.
const lastGoodEvery = time.Second

// lastGoodLoop writes the newest applied state to the last-good file, off the watch's
// goroutine and at most once per lastGoodEvery: the file holds every object, so writing it
// (and an fsync) per change would make a change's cost grow with the number of objects and
// delay the next change. The file is at most that much behind the serving config; the
// newest pending state is written when ctx ends.
func (n *Node) lastGoodLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			if pl := n.lastGood.Swap(nil); pl != nil {
				n.saveLastGood(pl)
			}
			return
		case <-n.lastGoodKick:
		}
		if pl := n.lastGood.Swap(nil); pl != nil {
			n.saveLastGood(pl)
		}
		t := time.NewTimer(lastGoodEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func errorLines(err error) []string {
	return strings.Split(err.Error(), "\n")
}

// probe asks etcd for one key every interval, to report whether it answers: the client's
// watch retries silently by itself and would not say.
func (n *Node) probe(ctx context.Context) {
	t := time.NewTicker(n.opt.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cli := n.client()
		if cli == nil {
			continue // run reports the failure to connect
		}
		pctx, cancel := context.WithTimeout(ctx, n.opt.ProbeInterval)
		_, err := cli.Get(pctx, n.prefix+"/"+keyFence, clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		n.setUp(err == nil, err)
	}
}

func (n *Node) setUp(up bool, err error) {
	n.mu.Lock()
	was, serving := n.st.EtcdUp, n.st.Source != ""
	n.st.EtcdUp = up
	if up {
		n.st.EtcdError, n.st.LastContact = "", time.Now().UTC()
	} else if err != nil {
		n.st.EtcdError = err.Error()
	}
	n.mu.Unlock()
	if m := n.opt.Metrics; m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.Up.Set(v)
	}
	switch {
	case was && !up:
		n.log.Error("etcd does not answer; serving the current config until it does", "err", err)
	case !was && up && serving:
		n.log.Info("etcd answers again")
	}
}

func (n *Node) countRestart() {
	if m := n.opt.Metrics; m != nil {
		m.WatchRestarts.Inc()
	}
	n.mu.Lock()
	n.st.WatchRestarts++
	n.mu.Unlock()
}

func (n *Node) sleep(ctx context.Context, backoff *time.Duration) {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	*backoff = min(2**backoff, n.opt.BackoffMax)
}

// Status returns the node's cluster state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

// ClusterStatus implements admin.Cluster.
func (n *Node) ClusterStatus() any { return n.Status() }
