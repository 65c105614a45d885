package acme

import (
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// syncBuffer is a log destination safe for certmagic's goroutines.
type syncBuffer struct {
	mu chan struct{}
	b  strings.Builder
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// TestNewRefusesUnusableStorage: a storage directory that cannot be made or written (here
// under a regular file, which stops root too) refuses the Manager with an error naming the
// field, rather than leaving its names without certificates in silence: certmagic's own
// check fails the order before its cert_failed event, and does not retry.
func TestNewRefusesUnusableStorage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	testutil.WriteFile(t, file, nil)
	o := Options{Domains: []string{"a.test"}, CA: "https://127.0.0.1:9/dir", Storage: filepath.Join(file, "acme"), Listener: "127.0.0.1:443"}
	_, err := New(o, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "acme.storage: ") || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("New with storage under a file: %v, want an acme.storage error", err)
	}
	o.Storage = filepath.Join(t.TempDir(), "a", "b") // made when missing
	m, err := New(o, nil, nil)
	if err != nil {
		t.Fatalf("New with a storage to make: %v", err)
	}
	m.Close()
	m.Close() // a second Gateway.Shutdown: certmagic's Cache.Stop alone would panic
	if ents, _ := os.ReadDir(o.Storage); len(ents) != 0 {
		t.Errorf("the storage check left %d entries behind", len(ents))
	}
}

// TestCertmagicErrorsLogged: certmagic's errors reach the gateway's log. A storage that
// fails after the Manager was made (here replaced by a file) stops the management of the
// name before any order (no cert_failed event, no retry); certmagic reports it only to its
// own logger.
func TestCertmagicErrorsLogged(t *testing.T) {
	logs := newSyncBuffer()
	storage := filepath.Join(t.TempDir(), "acme")
	o := Options{Domains: []string{"a.test"}, CA: "https://127.0.0.1:9/dir", Storage: storage, Listener: "127.0.0.1:443"}
	m, err := New(o, slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.RemoveAll(storage); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, storage, nil)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "certmagic's storage failure in the log", func() bool {
		return strings.Contains(logs.String(), "not a directory")
	})
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "component=acme") {
		t.Errorf("log %q: want a warning of component acme", l)
	}
}

// TestCertmagicLogQuiet: what certmagic logs for anyone's handshake (acme-tls/1 offered
// with no challenge pending), and the cancellation of a Manager closed by a reload, stay
// out of the log; an order's failure is logged once, as the cert_failed event.
func TestCertmagicLogQuiet(t *testing.T) {
	logs := newSyncBuffer()
	o := Options{Domains: []string{"a.test"}, CA: "https://127.0.0.1:9/dir", Storage: t.TempDir(), Listener: "127.0.0.1:443"}
	m, err := New(o, slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, peer := net.Pipe()
	defer peer.Close()
	defer conn.Close()
	for range 3 {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test", SupportedProtos: []string{ALPNProto}, Conn: conn}); err == nil {
			t.Fatal("a challenge certificate with no challenge pending")
		}
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the failed order in the log", func() bool {
		return strings.Contains(logs.String(), `msg="acme cert failed"`)
	})
	m.Close()
	time.Sleep(time.Second) // the order's goroutine ends at once on the cancel, logging or not
	l := logs.String()
	for _, quiet := range []string{"tls-alpn challenge", "could not get certificate from issuer", "context canceled"} {
		if strings.Contains(l, quiet) {
			t.Errorf("log has %q:\n%s", quiet, l)
		}
	}
}
