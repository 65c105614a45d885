package cluster

// SetBeforeWatch sets the hook run before each watch starts (nil: none).
func SetBeforeWatch(f func()) {
	if f == nil {
		beforeWatch.Store(nil)
		return
	}
	beforeWatch.Store(&f)
}
