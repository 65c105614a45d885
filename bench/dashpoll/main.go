// Command dashpoll stands in for an open dashboard in bench/dashboard.sh: once a second it
// fetches what the dashboard's pages poll (the overview's /admin/status, /admin/traffic and
// /admin/reloads, and the pool page's /admin/upstreams/{id}/timeline), as a browser tab
// would, until -d is over: the whole traffic series first, then only the newer points
// (?since=, as the page does). It prints the number of polls and failed fetches.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	admin := flag.String("admin", "http://127.0.0.1:23180", "admin listener base URL")
	upstream := flag.String("upstream", "bench", "upstream whose pool timeline is polled")
	key := flag.String("key", "", "API key (sent as X-API-Key)")
	dur := flag.Duration("d", 10*time.Second, "how long to poll")
	every := flag.Duration("every", time.Second, "poll interval")
	flag.Parse()
	since := ""
	c := &http.Client{Timeout: 5 * time.Second}
	polls, failed := 0, 0
	tk := time.NewTicker(*every)
	defer tk.Stop()
	for end := time.Now().Add(*dur); time.Now().Before(end); <-tk.C {
		polls++
		paths := []string{"/admin/status", "/admin/traffic" + since, "/admin/reloads", "/admin/upstreams/" + *upstream + "/timeline"}
		for _, p := range paths {
			req, _ := http.NewRequest("GET", *admin+p, nil)
			if *key != "" {
				req.Header.Set("X-API-Key", *key)
			}
			resp, err := c.Do(req)
			if err != nil {
				failed++
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasPrefix(p, "/admin/traffic") {
				var v struct{ Points []struct{ Time time.Time } }
				if json.Unmarshal(body, &v) == nil && len(v.Points) > 0 {
					since = fmt.Sprintf("?since=%d", v.Points[len(v.Points)-1].Time.UnixMilli())
				}
			}
			if resp.StatusCode != 200 {
				failed++
			}
		}
	}
	fmt.Printf("%d\t%d\n", polls, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
