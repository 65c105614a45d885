package plugin

import (
	"errors"
	"net/netip"
	"slices"

	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/reason"
	"sluice/internal/router"
)

// Chain is one route's plugin instances, split by phase. The request phase is ordered by
// stage, then by config order (global, upstream, route); the other phases run in config
// order.
type Chain struct {
	// RouteID is the route's id.
	RouteID string

	request  []entry
	upstream []entry
	response []entry
	body     []entry
	log      []entry

	// own is the unit of the route's own instances (nil: it has none), held by every set
	// that holds the chain (update.go).
	own *unit
}

type entry struct {
	name  string
	stage Stage
	slot  Slot
	req   RequestFilter
	up    UpstreamFilter
	resp  ResponseFilter
	body  ResponseBodyFilter
	lg    LogFilter
}

func newChain(routeID string, list []placed) *Chain {
	c := &Chain{RouteID: routeID}
	for i, p := range list {
		e := entry{name: p.name, stage: p.kind.Stage, slot: Slot(i)}
		e.req, _ = p.f.(RequestFilter)
		e.up, _ = p.f.(UpstreamFilter)
		e.resp, _ = p.f.(ResponseFilter)
		e.body, _ = p.f.(ResponseBodyFilter)
		e.lg, _ = p.f.(LogFilter)
		if e.req != nil {
			c.request = append(c.request, e)
		}
		if e.up != nil {
			c.upstream = append(c.upstream, e)
		}
		if e.resp != nil {
			c.response = append(c.response, e)
		}
		if e.body != nil {
			c.body = append(c.body, e)
		}
		if e.lg != nil {
			c.log = append(c.log, e)
		}
	}
	slices.SortStableFunc(c.request, func(a, b entry) int { return int(a.stage) - int(b.stage) })
	return c
}

// Plugins returns the names of the chain's request filters in the order they run, then
// those of the other phases: for the admin API and tests.
func (c *Chain) Plugins() (request []string) {
	for _, e := range c.request {
		request = append(request, e.name+"@"+e.stage.String())
	}
	return request
}

// Begin prepares r for one request on chain c (nil: the route has no plugins): its
// downstream, its routing input, and its client as the gateway resolved it (client and
// clientStr, the same address; forwarded, the X-Forwarded-For to send upstream, which r
// keeps using until End).
func (r *Request) Begin(ds proxy.Downstream, in *router.Input, c *Chain, client netip.Addr, clientStr string, forwarded []byte) {
	r.ds, r.in, r.chain = ds, in, c
	r.clientIP, r.clientStr, r.forwarded = client, clientStr, forwarded
}

// End clears r after its request, keeping its buffers.
func (r *Request) End() {
	r.ds, r.in, r.chain, r.consumer, r.pending = nil, nil, nil, nil, nil
	r.clientIP, r.clientStr, r.forwarded = netip.Addr{}, "", nil
	clear(r.slots[:])
	r.respFields.Reset()
	r.upFields.Reset()
	r.challenges.Reset()
	r.answer, r.answered, r.err = Answer{}, false, nil
	r.answerBody = nil
	r.bodyOn = 0
}

// RunRequest runs the request phase. It returns true when the chain answered the request
// (a local answer or an error, written to the downstream; AnswerOf says which): the proxy
// must not run then.
func (r *Request) RunRequest() bool {
	c := r.chain
	if c == nil {
		return false
	}
	// Only the chain says who the consumer is: a client's own X-Consumer-Name is dropped.
	r.Header().Del("X-Consumer-Name")
	for i := range c.request {
		e := &c.request[i]
		if e.stage == StageAuth && r.consumer != nil {
			continue // an earlier auth filter identified the consumer
		}
		if err := e.req.Request(r); err != nil {
			r.stop(e.name, err)
			return true
		}
		if e.stage == StageAuth && (i+1 == len(c.request) || c.request[i+1].stage != StageAuth) &&
			r.consumer == nil && r.pending != nil {
			r.respFields.Fields = append(r.respFields.Fields, r.challenges.Fields...)
			r.stop(e.name, r.pending)
			return true
		}
	}
	return false
}

// stop ends the request with err, as filter name returned it.
func (r *Request) stop(name string, err error) {
	r.answered = true
	if errors.Is(err, errAnswered) {
		r.answer.Plugin = name
		framing := int64(len(r.answerBody))
		if r.answer.Status == 204 || r.answer.Status == 304 {
			framing = h1.LengthNone
		}
		if r.ds.WriteHead(r.answer.Status, nil, &r.respFields, framing) == nil && framing > 0 {
			r.ds.Write(r.answerBody)
		}
		return
	}
	e := reason.From(err)
	r.err = e
	r.answer = Answer{Plugin: name, Status: e.Status, Code: e.Code}
	if w, ok := r.ds.(proxy.FieldsErrorWriter); ok {
		w.WriteErrorFields(e, "", &r.respFields)
	} else {
		r.ds.WriteError(e, "")
	}
}

// Err is the *reason.Error the chain stopped the request with, nil when it did not (or
// answered with a non-error status), for the access log.
func (r *Request) Err() *reason.Error { return r.err }

// RunLog runs the log phase; status is what the client got.
func (r *Request) RunLog(status int) {
	if r.chain == nil {
		return
	}
	for _, e := range r.chain.log {
		e.lg.Log(r, status)
	}
}
