// Command otlpsink is an OTLP/HTTP trace receiver for benchmarks: it reads each export
// (POST /v1/traces, protobuf), counts its bytes and answers an empty
// ExportTraceServiceResponse, so that an exporting gateway pays the whole export path
// without a collector's own work on the machine. It prints the totals when stopped.
//
//	otlpsink -addr 127.0.0.1:23001
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "listen address (loopback)")
	flag.Parse()
	var exports, bytes atomic.Int64
	http.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty body is an empty ExportTraceServiceResponse
	})
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		<-c
		fmt.Printf("exports %d bytes %d\n", exports.Load(), bytes.Load())
		os.Exit(0)
	}()
	log.Fatal(http.ListenAndServe(*addr, nil))
}
