package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// typicalGET is a browser-like GET with eight header fields.
const typicalGET = "GET /api/v1/users/12345?fields=name,email&limit=10 HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.abc\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Request-ID: 7f3c2a9e-1b4d-4e8f-9a6b-2c5d8e1f0a3b\r\n" +
	"\r\n"

const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Content-Length: 1234\r\n" +
	"Date: Tue, 25 Nov 2025 11:23:00 GMT\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Keep-Alive: timeout=5, max=100\r\n" +
	"X-Request-ID: 7f3c2a9e-1b4d-4e8f-9a6b-2c5d8e1f0a3b\r\n" +
	"\r\n"

func BenchmarkReadRequest(b *testing.B) {
	src := strings.NewReader(typicalGET)
	br := bufio.NewReader(src)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGET)))
	for b.Loop() {
		src.Reset(typicalGET)
		br.Reset(src)
		if err := ReadRequest(br, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadRequestNetHTTP is the net/http baseline for BenchmarkReadRequest.
func BenchmarkReadRequestNetHTTP(b *testing.B) {
	src := strings.NewReader(typicalGET)
	br := bufio.NewReader(src)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGET)))
	for b.Loop() {
		src.Reset(typicalGET)
		br.Reset(src)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadResponse(b *testing.B) {
	src := strings.NewReader(typicalResponse)
	br := bufio.NewReader(src)
	var r Response
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalResponse)))
	for b.Loop() {
		src.Reset(typicalResponse)
		br.Reset(src)
		if err := ReadResponse(br, &r, false, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkedRead(b *testing.B) {
	var wire bytes.Buffer
	bw := bufio.NewWriter(&wire)
	var cw ChunkedWriter
	cw.Reset(bw)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 16 {
		_, _ = cw.Write(chunk)
	}
	_ = cw.Close(nil)
	_ = bw.Flush()
	raw := wire.Bytes()
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	var body BodyReader
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(16 * 4096)
	for b.Loop() {
		src.Reset(raw)
		br.Reset(src)
		body.Reset(br, 0, true, 0)
		for range 1000 {
			if _, err := body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkChunkedWrite(b *testing.B) {
	bw := bufio.NewWriter(io.Discard)
	var cw ChunkedWriter
	chunk := bytes.Repeat([]byte("x"), 4096)
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		cw.Reset(bw)
		_, _ = cw.Write(chunk)
	}
}

func TestReadRequestZeroAllocs(t *testing.T) {
	src := strings.NewReader(typicalGET)
	br := bufio.NewReader(src)
	var r Request
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(typicalGET)
		br.Reset(src)
		if err := ReadRequest(br, &r, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadRequest allocs = %v, want 0", allocs)
	}
}
