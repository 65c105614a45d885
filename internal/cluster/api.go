package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The admin write API (docs/admin-api.md#writes-cluster-mode). The admin package routes
// these requests here after its access check (loopback, or the API key).

// maxBody bounds a write's request body.
const maxBody = 1 << 20

// requestTimeout bounds a write or read of the API, all its etcd requests included.
const requestTimeout = 5 * time.Second

// maxAttempts bounds the re-validations of a write that lost a race with another write.
const maxAttempts = 5

// write is one requested change, checked and applied by [Node.write].
type write struct {
	op      string // create, replace, patch, delete
	rel     string // key relative to the prefix
	value   []byte // canonical JSON of the new object (create, replace) or the merge patch (patch)
	ifMatch int64  // -1: no precondition; 0: must not exist; else the object's mod revision
	who     string
}

// writeResult is what a successful write answers.
type writeResult struct {
	Key         string `json:"key"`
	Op          string `json:"op"`
	OldRevision int64  `json:"old_revision"`
	Revision    int64  `json:"revision"`
}

// apiError is a write refused, with its HTTP status.
type apiError struct {
	status int
	code   string
	msg    string
	errs   []string
}

func (e *apiError) Error() string { return e.msg }

// ServeHTTP serves the write API (and GET of one object, with its ETag).
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, id, ok := objectPath(r.URL.Path)
	if !ok {
		writeErr(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no object kind at " + r.URL.Path + "; kinds: " + strings.Join(Kinds, ", ") + ", " + KindSettings})
		return
	}
	rel := kind
	if id != "" {
		rel = kind + "/" + id
	}
	// etcd requests wait for a connection; an unreachable etcd answers 503, not a hung call.
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	cli := n.client()
	if cli == nil {
		writeErr(w, &apiError{status: http.StatusServiceUnavailable, code: "etcd_unavailable", msg: "not connected to etcd yet"})
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		n.serveGet(w, r, cli, rel)
		return
	}
	wr, err := newWrite(r, kind, id)
	if err != nil {
		writeErr(w, err)
		return
	}
	res, err := n.write(r.Context(), cli, wr)
	if m := n.opt.Metrics; m != nil {
		result := "ok"
		if ae := (*apiError)(nil); errors.As(err, &ae) {
			result = ae.code
		} else if err != nil {
			result = "error"
		}
		m.Writes.WithLabelValues(kind, wr.op, result).Inc()
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("ETag", etag(res.Revision))
	status := http.StatusOK
	if wr.op == "create" {
		status = http.StatusCreated
	}
	writeJSONBody(w, status, res)
}

// objectPath splits /admin/settings, /admin/<kind> and /admin/<kind>/<id>.
func objectPath(p string) (kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/admin/")
	if !ok {
		return "", "", false
	}
	kind, id, _ = strings.Cut(rest, "/")
	if kind == KindSettings {
		return kind, "", id == ""
	}
	return kind, id, slices.Contains(Kinds, kind) && !strings.Contains(id, "/")
}

func newWrite(r *http.Request, kind, id string) (*write, error) {
	wr := &write{ifMatch: -1, who: who(r)}
	if im := r.Header.Get("If-Match"); im != "" {
		rev, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(im, "W/"), `"`), 10, 64)
		if err != nil || rev <= 0 {
			return nil, &apiError{status: http.StatusBadRequest, code: "bad_precondition", msg: fmt.Sprintf("If-Match %q: want the ETag of the object (its revision, such as \"42\")", im)}
		}
		wr.ifMatch = rev
	}
	if r.Header.Get("If-None-Match") == "*" {
		wr.ifMatch = 0
	}
	single := kind == KindSettings || id != ""
	switch {
	case r.Method == http.MethodPost && !single:
		wr.op = "create"
	case r.Method == http.MethodPut && single:
		wr.op = "replace"
	case r.Method == http.MethodPatch && single:
		wr.op = "patch"
	case r.Method == http.MethodDelete && single:
		wr.op = "delete"
	default:
		return nil, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: fmt.Sprintf("%s %s: objects are created with POST /admin/<kind>, and replaced (PUT), patched (PATCH) or deleted (DELETE) at /admin/<kind>/<id>", r.Method, r.URL.Path)}
	}
	if wr.op == "delete" {
		wr.rel = relOf(kind, id)
		return wr, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "read body: " + err.Error()}
	}
	if err := checkNotRedacted("the body", body); err != nil {
		return nil, &apiError{status: http.StatusUnprocessableEntity, code: "redacted_secret", msg: err.Error()}
	}
	obj, err := decodeObject(body)
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "the body must be one JSON (or YAML) object: " + err.Error()}
	}
	if f := IDField(kind); kind != KindSettings && wr.op != "patch" {
		got, has := obj[f]
		switch {
		case wr.op == "create" && !has:
			return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: f + ": required when creating with POST"}
		case wr.op == "create":
			id, _ = got.(string)
			if id == "" || strings.Contains(id, "/") {
				return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: fmt.Sprintf("%s: %v is not a valid id", f, got)}
			}
		case has && got != id:
			return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: fmt.Sprintf("%s: %v differs from the id %q in the path", f, got, id)}
		}
		obj[f] = id
	}
	if wr.op == "create" && wr.ifMatch < 0 {
		wr.ifMatch = 0
	}
	wr.rel = relOf(kind, id)
	if wr.value, err = canonicalJSON(obj); err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: err.Error()}
	}
	return wr, nil
}

func relOf(kind, id string) string {
	if kind == KindSettings {
		return kind
	}
	return kind + "/" + id
}

// write validates the state that wr would make against the whole config and writes it in
// one transaction guarded by the fence and the object's revision (see the package doc); a
// write that lost a race is validated again on the new state.
func (n *Node) write(ctx context.Context, cli *clientv3.Client, wr *write) (*writeResult, error) {
	key := n.prefix + "/" + wr.rel
	for range maxAttempts {
		st, err := Snapshot(ctx, cli, n.prefix)
		if err != nil {
			return nil, &apiError{status: http.StatusServiceUnavailable, code: "etcd_unavailable", msg: err.Error()}
		}
		cur := st.Get(wr.rel)
		var curRev int64
		if cur != nil {
			curRev = cur.ModRev
		}
		if err := wr.check(cur, curRev); err != nil {
			return nil, err
		}
		next := st.Clone()
		var obj *Object
		if wr.op != "delete" {
			v := wr.value
			if wr.op == "patch" {
				if v, err = mergePatch(cur.Value, wr.value, wr.rel); err != nil {
					return nil, err
				}
			}
			obj = &Object{Value: v}
		}
		next.Put(wr.rel, obj)
		if _, err := Assemble(n.opt.Local, n.prefix, next); err != nil {
			return nil, &apiError{status: http.StatusUnprocessableEntity, code: "invalid_config",
				msg: "the config would be invalid; nothing was written", errs: errorLines(err)}
		}
		if obj != nil && cur != nil && string(obj.Value) == string(cur.Value) {
			return &writeResult{Key: key, Op: wr.op, OldRevision: curRev, Revision: curRev}, nil // no change
		}
		op := clientv3.OpDelete(key)
		if obj != nil {
			op = clientv3.OpPut(key, string(obj.Value))
		}
		fence := n.prefix + "/" + keyFence
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(fence), "=", st.FenceRev), clientv3.Compare(clientv3.ModRevision(key), "=", curRev)).
			Then(op, clientv3.OpPut(fence, fenceValue(wr.who, wr.op, wr.rel))).Commit()
		if err != nil {
			return nil, &apiError{status: http.StatusServiceUnavailable, code: "etcd_unavailable", msg: err.Error()}
		}
		if !resp.Succeeded {
			continue // another write came first: check again on the new state
		}
		res := &writeResult{Key: key, Op: wr.op, OldRevision: curRev, Revision: resp.Header.Revision}
		n.log.Info("cluster config change", "audit", true, "who", wr.who, "op", wr.op, "key", key,
			"old_revision", curRev, "new_revision", res.Revision)
		return res, nil
	}
	return nil, &apiError{status: http.StatusConflict, code: "write_conflict", msg: fmt.Sprintf("other writes came first %d times; try again", maxAttempts)}
}

// check tests wr's preconditions against the current object.
func (wr *write) check(cur *Object, curRev int64) error {
	switch {
	case wr.op == "create" && cur != nil:
		return &apiError{status: http.StatusConflict, code: "exists", msg: wr.rel + " exists; replace it with PUT"}
	case (wr.op == "patch" || wr.op == "delete") && cur == nil:
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "no " + wr.rel}
	case wr.ifMatch >= 0 && wr.ifMatch != curRev:
		return &apiError{status: http.StatusPreconditionFailed, code: "precondition_failed",
			msg: fmt.Sprintf("%s is at revision %d, not %d: it changed since you read it", wr.rel, curRev, wr.ifMatch)}
	}
	return nil
}

func (n *Node) serveGet(w http.ResponseWriter, r *http.Request, cli *clientv3.Client, rel string) {
	resp, err := cli.Get(r.Context(), n.prefix+"/"+rel)
	if err != nil {
		writeErr(w, &apiError{status: http.StatusServiceUnavailable, code: "etcd_unavailable", msg: err.Error()})
		return
	}
	if len(resp.Kvs) == 0 {
		writeErr(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no " + rel + " in etcd"})
		return
	}
	kv := resp.Kvs[0]
	w.Header().Set("ETag", etag(kv.ModRevision))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(redactObject(rel, rawJSON(kv.Value)), '\n'))
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// who names the writer for the audit log: the API key's fingerprint (never the key), or
// "loopback" when the admin API needs no key; and the client address.
func who(r *http.Request) string {
	k := r.Header.Get("X-API-Key")
	if scheme, v, ok := strings.Cut(r.Header.Get("Authorization"), " "); k == "" && ok && strings.EqualFold(scheme, "Bearer") {
		k = strings.TrimSpace(v)
	}
	if k == "" {
		return "loopback " + r.RemoteAddr
	}
	sum := sha256.Sum256([]byte(k))
	return "key:" + hex.EncodeToString(sum[:4]) + " " + r.RemoteAddr
}

// mergePatch applies a JSON merge patch (RFC 7386) to cur.
func mergePatch(cur, patch []byte, rel string) ([]byte, error) {
	c, err := decodeObject(cur)
	if err != nil {
		return nil, &apiError{status: http.StatusConflict, code: "invalid_stored_value", msg: rel + ": " + err.Error()}
	}
	p, _ := decodeObject(patch) // canonical already
	merged := mergeValue(c, p).(map[string]any)
	kind, _, _ := strings.Cut(rel, "/")
	if f := IDField(kind); c[f] != nil && merged[f] != c[f] {
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: f + ": cannot be changed by a patch"}
	}
	return canonicalJSON(merged)
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	out := make(map[string]any, len(tm))
	for k, v := range tm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergeValue(out[k], v)
	}
	return out
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: err.Error()}
	}
	body := map[string]any{"error": ae.code, "message": ae.msg}
	if ae.errs != nil {
		body["errors"] = ae.errs
	}
	writeJSONBody(w, ae.status, body)
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
