// Package cluster is Sluice's cluster mode: many gateways, one configuration in etcd.
//
// # Key layout
//
// Every object is one key under the cluster's prefix (default "/sluice"):
//
//	<prefix>/settings           the shared top-level settings (errors, shutdown_grace, ...)
//	<prefix>/upstreams/<id>     one upstream, as in a config file's upstreams list
//	<prefix>/routes/<id>        one route
//	<prefix>/consumers/<name>   one consumer (named by its name field, see [IDField])
//	<prefix>/fence              written by every API and CLI change (see Writes below)
//
// A new kind of object (consumers, plugin configs) is one more entry in [Kinds]: its objects
// go under <prefix>/<kind>/<id>, its list under the same name in the assembled config. Values
// are JSON objects with the config file's field names: JSON because every etcd tool (etcdctl,
// jq) reads it, because a canonical form (sorted keys, no spacing) makes "did this object
// change" a byte comparison for `sluice config push`, and because JSON is YAML, so the config
// package's strict YAML decoder reads the values unchanged.
//
// What is node-local stays in each node's file: listeners, admin, log and cluster. The
// config a node serves is its file's node-local part plus every object in etcd, assembled
// into one document and loaded by [config.Parse]: validation is exactly the file's.
//
// # Reading: snapshot, then watch
//
// A [Node] holds one etcd client and one watch. It reads every key under the prefix with one
// range request (a consistent snapshot at one revision), applies it, and watches the prefix
// from the next revision. Each watch response (one write, or one transaction of many) is
// applied to the copy of the objects, assembled, validated and handed to the gateway, whose
// Apply keeps the pools, health state and learned idle timeouts of unchanged upstreams. An
// invalid state is refused: logged, counted, shown in /admin/status, and the last good config
// keeps serving; the next valid state is applied as usual.
//
// The client resumes a broken watch from the last revision it saw by itself; when etcd has
// compacted that revision, the node reads a fresh snapshot and applies it the same way (the
// gateway diffs it, nothing is rebuilt that did not change). A probe reads one key every
// second to tell whether etcd answers; while it does not, the node keeps serving what it has
// and reports etcd down. Every applied config is written to the last-good file (temp file,
// fsync, rename): a snapshot before the node goes on, watched changes by a goroutine of
// its own that writes the newest state at most once a second (the file holds every
// object; a write per change would make a change cost more with more objects); a node that starts while etcd is unreachable serves that file and says so.
//
// # Writes
//
// The admin write API and `sluice config push` validate the whole resulting config before
// writing, and write in one transaction guarded by the revision of the fence key read with
// the snapshot they validated: if anything was written through them in between, the
// transaction fails and they validate again on the new state (serializable writes without a
// lock). An object's own mod revision is its ETag; If-Match compares it in the same
// transaction and a mismatch answers 412.
package cluster
