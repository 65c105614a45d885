package cluster

// SetBeforeWatch sets the hook run before each watch starts (nil: none).
func SetBeforeWatch(f func()) {
	if f == nil {
		beforeWatch.Store(nil)
		return
	}
	beforeWatch.Store(&f)
}

// Incremental is the number of changes the node validated and applied object by object.
func (n *Node) Incremental() int64 { return n.incremental.Load() }
