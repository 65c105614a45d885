package accesslog

// Runs of fields that repeat from line to line (issue #21).
//
// Several fields of consecutive lines are usually the same: on a kept-alive connection the
// client address, method and host, the HTTP version and user agent, and, for a route's
// traffic, the route, upstream and target. A Line keeps per run the raw values it last
// rendered and the JSON text (keys included) they rendered to; Recall compares the new raw
// values with the kept ones byte for byte and, when all match, appends the kept text whole
// instead of appending each key and escaping each value again.
//
// The raw values are copied, never kept as the caller's strings: a value such as the host
// points into the connection's read buffer, which the next request overwrites, so a kept
// string would change under the memo and match the request that overwrote it.
//
// Lines are pooled (in practice one per P), so a memo follows whatever requests its P
// serves: under a population of clients a run misses more often, and a miss costs the
// comparison (usually the lengths) and copying the run's values and text into the memo.

// A Run names one memo of a Line; the gateway has one per run of fields it remembers.
type Run uint8

// NumRuns is how many runs a Line remembers (Run values 0 to NumRuns-1).
const NumRuns = 3

// maxMemo bounds what one run keeps (values and text): a longer run (a long user agent) is
// rendered every time, so a Line's memos stay small.
const maxMemo = 512

// memo is what a Line remembers of one run.
type memo struct {
	ok   bool
	key  uint64 // the caller's description of the run's shape (which fields it holds)
	lens [3]int // the lengths of the values, in vals one after the other
	vals []byte // the raw values
	text []byte // the JSON the run rendered to, from its first comma on
}

// matches reports whether m was rendered from key and v0..v2.
func (m *memo) matches(key uint64, v0, v1, v2 string) bool {
	if !m.ok || m.key != key || m.lens[0] != len(v0) || m.lens[1] != len(v1) || m.lens[2] != len(v2) {
		return false
	}
	a, b := len(v0), len(v0)+len(v1)
	return string(m.vals[:a]) == v0 && string(m.vals[a:b]) == v1 && string(m.vals[b:]) == v2
}

// Recall appends the text run r rendered to when it was last remembered, if that was for
// key and the values v0, v1, v2 (byte for byte), and reports whether it did. key describes
// the run's shape: the fields it holds and which of them the request has, so that the same
// values under another field list or with a field absent are not taken for the same run.
// Values the run does not use are "".
func (ln *Line) Recall(r Run, key uint64, v0, v1, v2 string) bool {
	if ln == nil || !ln.memo[r].matches(key, v0, v1, v2) {
		return false
	}
	ln.b = append(ln.b, ln.memo[r].text...)
	return true
}

// Mark returns where the next field starts, for Remember.
func (ln *Line) Mark() int {
	if ln == nil {
		return 0
	}
	return len(ln.b)
}

// Remember keeps what the line holds from start (a Mark) on as run r's text for key and
// v0, v1, v2: a later Recall with the same key and values appends it. The values are
// copied.
func (ln *Line) Remember(r Run, start int, key uint64, v0, v1, v2 string) {
	if ln == nil {
		return
	}
	m := &ln.memo[r]
	text := ln.b[start:]
	if len(v0)+len(v1)+len(v2)+len(text) > maxMemo {
		m.ok = false
		return
	}
	m.ok, m.key, m.lens = true, key, [3]int{len(v0), len(v1), len(v2)}
	m.vals = append(append(append(m.vals[:0], v0...), v1...), v2...)
	m.text = append(m.text[:0], text...)
}
