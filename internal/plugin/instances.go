package plugin

// Instances returns the set's plugin instances, each once, with the name of its plugin: for
// views and metrics that read an instance's own state (a limit's counters) at scrape time.
func (s *Set) Instances() (names []string, instances []any) {
	if s == nil {
		return nil, nil
	}
	seen := map[any]bool{}
	add := func(name string, f any) {
		if f != nil && !seen[f] {
			seen[f] = true
			names, instances = append(names, name), append(instances, f)
		}
	}
	for _, c := range s.chains {
		if c == nil {
			continue
		}
		for _, list := range [][]entry{c.request, c.upstream, c.response, c.log} {
			for _, e := range list {
				switch {
				case e.req != nil:
					add(e.name, e.req)
				case e.up != nil:
					add(e.name, e.up)
				case e.resp != nil:
					add(e.name, e.resp)
				case e.lg != nil:
					add(e.name, e.lg)
				}
			}
		}
	}
	return names, instances
}
