package gateway

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/accesslog"
)

// BenchmarkAccessLogInterleaved is the cost of the access log written to a file against
// the same gateway config without an access log, side by side on one backend
// (interleaveBlocks: blocks of 50 requests, alternated; "extra-ns/req" is what the log adds
// to a request). Rows: the default line (every field), a trimmed field list
// (trimmedFields), and the default without tries and user_agent. The file is a real one in the test's temporary directory, written as
// sluice run writes it (accesslog.Open: the raw write(2) on a local filesystem).
//
//	SLUICE_BENCH_PORT_BASE=23000 go test ./internal/gateway -run '^$' -bench AccessLogInterleaved -benchtime 400x -count 3
func BenchmarkAccessLogInterleaved(b *testing.B) {
	be := rawBackendOn(b, benchPort(60))
	plainAddr := benchGateway(b, pluginBenchConfig(b, benchPort(61), be, ""), false)
	for i, row := range []struct{ name, fields string }{
		{name: "default"},
		{name: "trimmed", fields: fmt.Sprintf(", access_fields: [%s]", strings.Join(trimmedFields, ", "))},
		{name: "no-tries", fields: ", access_exclude_fields: [tries, user_agent]"},
	} {
		b.Run(row.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "access.log")
			yaml := strings.Replace(pluginBenchConfig(b, benchPort(62+i), be, ""), `log: {access: "off"}`,
				fmt.Sprintf("log: {access: %q%s}", path, row.fields), 1)
			al, err := accesslog.Open(path, io.Discard, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			addr := benchGatewayLog(b, yaml, al)
			plain, with := dialClient(b, plainAddr, "/"), dialClient(b, addr, "/")
			defer plain.conn.Close()
			defer with.conn.Close()
			interleaveBlocks(b, plain, with, 50)
		})
	}
}
