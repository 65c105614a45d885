package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		isHEAD     bool
		status     int
		reason     string
		minor      int
		length     int64
		chunked    bool
		noBody     bool
		untilClose bool
		close      bool
		kaTimeout  time.Duration
		kaMax      int
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
			status: 200, reason: "OK", minor: 1, length: 5, kaMax: -1},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			status: 200, reason: "OK", minor: 1, length: -1, chunked: true, kaMax: -1},
		{name: "until close", raw: "HTTP/1.1 200 OK\r\n\r\n",
			status: 200, reason: "OK", minor: 1, length: -1, untilClose: true, close: true, kaMax: -1},
		{name: "HEAD with length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", isHEAD: true,
			status: 200, reason: "OK", minor: 1, noBody: true, kaMax: -1},
		{name: "HEAD chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", isHEAD: true,
			status: 200, reason: "OK", minor: 1, noBody: true, kaMax: -1},
		{name: "204", raw: "HTTP/1.1 204 No Content\r\n\r\n",
			status: 204, reason: "No Content", minor: 1, noBody: true, kaMax: -1},
		{name: "304 with length", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
			status: 304, reason: "Not Modified", minor: 1, noBody: true, kaMax: -1},
		{name: "100 continue", raw: "HTTP/1.1 100 Continue\r\n\r\n",
			status: 100, reason: "Continue", minor: 1, noBody: true, kaMax: -1},
		{name: "103 early hints", raw: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
			status: 103, reason: "Early Hints", minor: 1, noBody: true, kaMax: -1},
		{name: "no reason no space", raw: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
			status: 200, minor: 1, kaMax: -1},
		{name: "empty reason", raw: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
			status: 404, minor: 1, kaMax: -1},
		{name: "reason with spaces", raw: "HTTP/1.1 500 Internal  Server Error\r\nContent-Length: 0\r\n\r\n",
			status: 500, reason: "Internal  Server Error", minor: 1, kaMax: -1},
		{name: "identical CL repeated", raw: "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7, 7\r\n\r\n",
			status: 200, reason: "OK", minor: 1, length: 7, kaMax: -1},
		{name: "connection close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
			status: 200, reason: "OK", minor: 1, close: true, kaMax: -1},
		{name: "HTTP/1.0 default close", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
			status: 200, reason: "OK", length: 2, close: true, kaMax: -1},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\n",
			status: 200, reason: "OK", length: 2, kaTimeout: 5 * time.Second, kaMax: 100},
		{name: "keep-alive params spaced and cased", raw: "HTTP/1.1 200 OK\r\nKeep-Alive:  MAX = 7 ,Timeout=30\r\nContent-Length: 0\r\n\r\n",
			status: 200, reason: "OK", minor: 1, kaTimeout: 30 * time.Second, kaMax: 7},
		{name: "keep-alive junk ignored", raw: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=-1, max=abc, foo, =3, timeout=\"4\"\r\nContent-Length: 0\r\n\r\n",
			status: 200, reason: "OK", minor: 1, kaMax: -1},
		{name: "keep-alive first wins", raw: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nKeep-Alive: timeout=9, max=1\r\nContent-Length: 0\r\n\r\n",
			status: 200, reason: "OK", minor: 1, kaTimeout: 2 * time.Second, kaMax: 1},
		{name: "keep-alive huge ignored", raw: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=99999999999\r\nContent-Length: 0\r\n\r\n",
			status: 200, reason: "OK", minor: 1, kaMax: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			err := ReadResponse(bufio.NewReader(strings.NewReader(tc.raw)), &r, tc.isHEAD, Limits{})
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			if r.Status != tc.status || string(r.Reason) != tc.reason || r.Minor != tc.minor {
				t.Errorf("status line = %d %q minor %d; want %d %q minor %d", r.Status, r.Reason, r.Minor, tc.status, tc.reason, tc.minor)
			}
			if r.ContentLength != tc.length || r.Chunked != tc.chunked || r.NoBody != tc.noBody || r.UntilClose != tc.untilClose {
				t.Errorf("framing = len %d chunked %v nobody %v untilclose %v; want %d %v %v %v",
					r.ContentLength, r.Chunked, r.NoBody, r.UntilClose, tc.length, tc.chunked, tc.noBody, tc.untilClose)
			}
			if r.Close != tc.close || r.KeepAliveTimeout != tc.kaTimeout || r.KeepAliveMax != tc.kaMax {
				t.Errorf("close %v timeout %v max %d; want %v %v %d", r.Close, r.KeepAliveTimeout, r.KeepAliveMax, tc.close, tc.kaTimeout, tc.kaMax)
			}
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		lim  Limits
		err  error // nil: an *Error with Status 502
	}{
		{name: "CL and TE", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "invalid CL", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n"},
		{name: "negative CL", raw: "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"},
		{name: "differing CL fields", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
		{name: "differing CL list", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n"},
		{name: "TE gzip", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{name: "TE twice", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "TE in HTTP/1.0", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "two-digit status", raw: "HTTP/1.1 20 OK\r\n\r\n"},
		{name: "four-digit status", raw: "HTTP/1.1 2000 OK\r\n\r\n"},
		{name: "status below 100", raw: "HTTP/1.1 099 Odd\r\n\r\n"},
		{name: "status letters", raw: "HTTP/1.1 2x0 OK\r\n\r\n"},
		{name: "HTTP/2.0", raw: "HTTP/2.0 200 OK\r\n\r\n"},
		{name: "lower-case version", raw: "http/1.1 200 OK\r\n\r\n"},
		{name: "no space after version", raw: "HTTP/1.1\t200 OK\r\n\r\n"},
		{name: "bare LF", raw: "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
		{name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
		{name: "CTL in reason", raw: "HTTP/1.1 200 O\x01K\r\n\r\n"},
		{name: "head too large", raw: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 64}},
		{name: "empty input", raw: "", err: io.EOF},
		{name: "truncated head", raw: "HTTP/1.1 200 OK\r\nContent-Le", err: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			err := ReadResponse(bufio.NewReader(strings.NewReader(tc.raw)), &r, false, tc.lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if got := statusOf(err); got != 502 {
				t.Errorf("status = %d (%v), want 502", got, err)
			}
		})
	}
}

// TestReadResponseInformational reads 1xx responses followed by the final one, as a proxy's
// loop does.
func TestReadResponseInformational(t *testing.T) {
	raw := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n" +
		"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
	br := bufio.NewReader(strings.NewReader(raw))
	var r Response
	var seen []int
	for range 5 {
		if err := ReadResponse(br, &r, false, Limits{}); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, r.Status)
		if r.Status >= 200 {
			break
		}
	}
	if len(seen) != 3 || seen[2] != 201 {
		t.Fatalf("statuses = %v, want [100 103 201]", seen)
	}
	var body BodyReader
	body.Reset(br, r.ContentLength, r.Chunked, 0)
	got, err := io.ReadAll(&body)
	if err != nil || string(got) != "ok" {
		t.Errorf("body = %q, %v", got, err)
	}
}
