package acme

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"sluice/internal/testutil"
)

// TestRFC2136Updates: the provider adds and removes TXT records on a real DNS server with
// TSIG-signed RFC 2136 updates; an update signed with the wrong secret, or not signed, is
// refused and reported as an error.
func TestRFC2136Updates(t *testing.T) {
	const secret = "c2x1aWNlLXRlc3QtdHNpZy1zZWNyZXQtMzItYnl0ZXM=" // base64
	srv := testutil.NewDNSUpdateServer(t, "zone.test", "sluice-key", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := []libdns.Record{libdns.TXT{Name: "_acme-challenge.www", TTL: time.Minute, Text: "token-value_1"}}

	p := &rfc2136{d: DNS01{Server: srv.Addr, TSIGKey: "sluice-key", TSIGSecret: secret, TSIGAlgorithm: "hmac-sha256"}}
	if _, err := p.AppendRecords(ctx, "zone.test.", rec); err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	if got := srv.TXT("_acme-challenge.www.zone.test"); !slices.Equal(got, []string{"token-value_1"}) {
		t.Fatalf("TXT after the update = %q", got)
	}
	if _, err := p.DeleteRecords(ctx, "zone.test.", rec); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if got := srv.TXT("_acme-challenge.www.zone.test"); len(got) != 0 {
		t.Fatalf("TXT after the removal = %q", got)
	}

	wrong := &rfc2136{d: DNS01{Server: srv.Addr, TSIGKey: "sluice-key", TSIGSecret: "d3Jvbmctc2VjcmV0", TSIGAlgorithm: "hmac-sha256"}}
	if _, err := wrong.AppendRecords(ctx, "zone.test.", rec); err == nil {
		t.Error("an update signed with the wrong secret succeeded")
	}
	unsigned := &rfc2136{d: DNS01{Server: srv.Addr}}
	if _, err := unsigned.AppendRecords(ctx, "zone.test.", rec); err == nil || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("an unsigned update = %v, want REFUSED", err)
	}
	if got := srv.TXT("_acme-challenge.www.zone.test"); len(got) != 0 {
		t.Errorf("refused updates changed the zone: %q", got)
	}
	if acc, ref := srv.Updates(); acc != 2 || ref < 1 {
		t.Errorf("server saw %d accepted, %d refused updates; want 2 and at least 1", acc, ref)
	}
}
