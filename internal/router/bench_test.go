package router

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"sluice/internal/config"
)

// benchRoutes makes n routes shaped like a multi-tenant config: 20 routes per exact host
// (exact paths, one- and two-parameter templates, a catch-all, prefixes, some with
// methods or headers), 5% of hosts as wildcards, a few any-host routes and five regex
// routes that run for every request that reaches the any-host bucket.
func benchRoutes(n int) []*config.Route {
	routes := make([]*config.Route, 0, n)
	add := func(id string, m config.Match) {
		if len(routes) < n {
			routes = append(routes, rt(id, m))
		}
	}
	for i := range 5 {
		add(fmt.Sprintf("regex%d", i), config.Match{PathRegex: fmt.Sprintf(`^/legacy%d/.*\.php$`, i)})
	}
	add("health", config.Match{Path: "/healthz"})
	add("metrics", config.Match{PathPrefix: "/metrics", Methods: []string{"GET"}})
	for h := 0; len(routes) < n; h++ {
		hosts := []string{fmt.Sprintf("svc%d.example.com", h)}
		if h%20 == 19 {
			hosts = []string{fmt.Sprintf("*.tenant%d.example.net", h)}
		}
		for j := 0; j < 4 && len(routes) < n; j++ {
			res := fmt.Sprintf("/api/v1/res%d", j)
			m := func(mm config.Match) config.Match { mm.Hosts = hosts; return mm }
			add(fmt.Sprintf("h%d-list%d", h, j), m(config.Match{Path: res, Methods: []string{"GET"}}))
			add(fmt.Sprintf("h%d-get%d", h, j), m(config.Match{Path: res + "/{id}"}))
			add(fmt.Sprintf("h%d-sub%d", h, j), m(config.Match{Path: res + "/{id}/items/{item}"}))
			add(fmt.Sprintf("h%d-canary%d", h, j), m(config.Match{PathPrefix: res + "/", Headers: []config.ValueMatch{{Name: "X-Canary", Present: ptr(true)}}}))
			add(fmt.Sprintf("h%d-files%d", h, j), m(config.Match{Path: fmt.Sprintf("/files%d/{path...}", j)}))
		}
	}
	return routes
}

// benchInputs makes requests over the hosts of n routes: hits on every path kind and
// some misses that fall through to the any-host bucket.
func benchInputs(n int) []Input {
	r := rand.New(rand.NewPCG(3, 4))
	hostsN := max(1, n/20)
	ins := make([]Input, 1024)
	for i := range ins {
		h := r.IntN(hostsN)
		host := fmt.Sprintf("svc%d.example.com:443", h)
		if h%20 == 19 {
			host = fmt.Sprintf("a.tenant%d.example.net", h)
		}
		j := r.IntN(4)
		paths := []string{
			fmt.Sprintf("/api/v1/res%d", j),
			fmt.Sprintf("/api/v1/res%d/%d", j, r.IntN(1000)),
			fmt.Sprintf("/api/v1/res%d/%d/items/%d", j, r.IntN(1000), r.IntN(10)),
			fmt.Sprintf("/files%d/a/b/c.txt", j),
			"/healthz",
			"/nothing/here",
		}
		ins[i] = Input{Method: "GET", Host: host, Path: paths[r.IntN(len(paths))]}
	}
	return ins
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tab, err := Compile(benchRoutes(n))
			if err != nil {
				b.Fatal(err)
			}
			ins := benchInputs(n)
			b.ReportAllocs()
			cpu0, cpuOK := cpuTime()
			i := 0
			for b.Loop() {
				tab.Match(&ins[i%len(ins)])
				i++
			}
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	routes := benchRoutes(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(routes); err != nil {
			b.Fatal(err)
		}
	}
}
