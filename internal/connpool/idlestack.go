package connpool

// The idle stack's storage. p.idle is the stack, oldest at the bottom (index 0), ordered by
// idle start (lastUsed); p.idleArr is its whole array. Evicting the oldest conn (MaxIdle,
// or a swap at MaxConns) moves the slice's start up one place instead of shifting every
// conn down: at max_idle 1024 the shift made a Release that evicts 1.4-2.2x as long
// (BenchmarkReleaseEvicts, 400-540 ns against 210-320), all of it under the lock. The room
// so left at the array's start is taken back when the stack reaches the array's end: the
// conns move down once per that many evictions, where append would allocate a new array.
// Which conn is evicted and the order of reuse do not change.
//
// Invariants: p.idle ends where p.idleArr ends (every re-slice keeps its end: popping the
// top, slices.Delete, the sweep's in-place filter, dropOldestLocked), p.idleArr is updated
// whenever an append or insert gives p.idle a new array, and the array holds no conn outside
// p.idle (whatever takes one off clears its slot).

import "slices"

// pushIdleLocked puts c, just released, on top of the idle stack.
func (p *Pool) pushIdleLocked(c *Conn) {
	p.roomLocked()
	p.idle = append(p.idle, c)
	p.arrayLocked()
}

// insertIdleLocked puts c on the idle stack in the place its idle start (lastUsed) gives it:
// the stack is ordered by it, the oldest at the bottom (refreshLocked and popLocked rely on
// that). Released conns go on top; a conn put back after a TLS read, or a new one whose dial
// started before others were released, may go below.
func (p *Pool) insertIdleLocked(c *Conn) {
	i := len(p.idle)
	for i > 0 && p.idle[i-1].lastUsed.After(c.lastUsed) {
		i--
	}
	p.roomLocked()
	p.idle = slices.Insert(p.idle, i, c)
	p.arrayLocked()
	p.mayPre = p.mayPre || c.pre
}

// dropOldestLocked takes the bottom conn, the oldest, off the idle stack and returns it.
func (p *Pool) dropOldestLocked() *Conn {
	c := p.idle[0]
	p.idle[0] = nil // the array must not keep it
	p.idle = p.idle[1:]
	return c
}

// popTopLocked takes the top conn off the idle stack (the caller has it).
func (p *Pool) popTopLocked() {
	p.idle[len(p.idle)-1] = nil
	p.idle = p.idle[:len(p.idle)-1]
}

// roomLocked makes room for one more conn without a new array when the stack has reached
// the array's end and evictions left room at its start: the conns move down to the start.
func (p *Pool) roomLocked() {
	if len(p.idle) < cap(p.idle) || len(p.idle) == len(p.idleArr) {
		return
	}
	n := copy(p.idleArr, p.idle)
	clear(p.idleArr[n:])
	p.idle = p.idleArr[:n]
}

// arrayLocked notes p.idle's array after an append or insert that may have made a new one:
// then p.idle no longer ends where p.idleArr does (and starts where its new array does).
func (p *Pool) arrayLocked() {
	all := p.idle[:cap(p.idle)]
	if len(p.idleArr) == 0 || &all[len(all)-1] != &p.idleArr[len(p.idleArr)-1] {
		p.idleArr = all
	}
}
