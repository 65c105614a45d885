package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h2pool"
	"sluice/internal/reason"
)

// shutdownBodyRecorder is a duplex downstream whose request body breaks off (as the client's
// socket does when a forced shutdown closes it) before the request's context ends with the
// shutdown's cause: the context is canceled at the first response write after the body's
// read failed.
type shutdownBodyRecorder struct {
	*recorder
	cancel  context.CancelCauseFunc
	breakUp chan struct{} // closed: the body read in progress fails
	reads   atomic.Int32
	inWrite atomic.Bool   // a response body write waits
	beGone  chan struct{} // closed when the backend saw its stream end
	once    sync.Once
}

func (r *shutdownBodyRecorder) DuplexBody() bool { return true }

func (r *shutdownBodyRecorder) ReadBody(p []byte) (int, error) {
	if r.reads.Add(1) == 1 {
		return copy(p, "x"), nil
	}
	<-r.breakUp
	return 0, errors.New("read tcp: use of closed network connection")
}

func (r *shutdownBodyRecorder) Write(p []byte) (int, error) {
	if r.reads.Load() >= 2 {
		r.once.Do(func() {
			r.inWrite.Store(true)
			select { // the backend saw its stream end: the body's failure was taken
			case <-r.beGone:
			case <-time.After(5 * time.Second):
			}
			r.cancel(reason.New(503, reason.GatewayShutdown, "", errors.New("grace period ended")))
		})
	}
	return r.recorder.Write(p)
}

// TestH2ShutdownMidBodyIsShutdown: a forced shutdown while an HTTP/2 upstream's response
// streams and the client's body is still being sent is the gateway's doing (503
// gateway_shutting_down), as on the HTTP/1.1 path, whichever read fails first. When the
// client's body read failed first (its socket closed by the shutdown; on a loaded machine,
// one time in a few), the attempt was logged as the client's failure (client_body_error).
func TestH2ShutdownMidBodyIsShutdown(t *testing.T) {
	beGone := make(chan struct{})
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(beGone)
		for i := 0; ; i++ { // a chunk every 5 ms until the request ends
			if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	defer be.Close()
	addr := be.Listener.Addr().String()
	rt, _ := testRoute(t, addr, connpool.Options{}, func(_ *config.Route, u *config.Upstream) { u.Protocol = config.ProtocolH2C })
	tg := rt.Upstream.Current().Targets[0]
	tg.H2 = h2pool.New(addr, h2pool.Options{PingAfterIdle: time.Minute, PingTimeout: time.Second}, slog.New(slog.DiscardHandler))
	defer tg.H2.Close(h2pool.CloseShutdown)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	rd := &shutdownBodyRecorder{recorder: newRecorder(t, ctx, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", ""),
		cancel: cancel, breakUp: make(chan struct{}), beGone: beGone}
	done := make(chan struct{})
	var rec Record
	go func() { defer close(done); testProxy().Serve(rd, rt, &rec) }()
	deadline := time.Now().Add(5 * time.Second)
	for !rd.inWrite.Load() { // the body's second read and a response write waiting
		if time.Now().After(deadline) {
			t.Fatal("the response did not start")
		}
		time.Sleep(time.Millisecond)
	}
	close(rd.breakUp)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not end after the request was canceled")
	}
	if rec.Reason != reason.GatewayShutdown {
		t.Errorf("reason %q (%v); want gateway_shutting_down", rec.Reason, rec.Err)
	}
}
