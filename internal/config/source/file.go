// Package source tells the gateway when its config changed. The file source polls: it works the
// same for editors that replace files, for Kubernetes ConfigMap symlink swaps and for network
// file systems, where inotify-style watches are unreliable, and its cost is one stat per poll.
package source

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// File watches one config file.
type File struct {
	Path     string
	Interval time.Duration // 0 => 1s
}

// Watch sends on the returned channel whenever the file's content differs from what it was at
// the previous check (modification time and size gate the hashing). The channel has room for
// one pending change; changes that arrive while one is pending are merged into it. The channel
// closes when ctx ends.
func (f File) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	go func() {
		defer close(ch)
		mod, size := f.stat()
		sum := f.hash()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m, s := f.stat()
			if m.Equal(mod) && s == size {
				continue
			}
			mod, size = m, s
			h := f.hash()
			if h == sum {
				continue
			}
			sum = h
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}

func (f File) stat() (time.Time, int64) {
	fi, err := os.Stat(f.Path)
	if err != nil {
		return time.Time{}, -1
	}
	return fi.ModTime(), fi.Size()
}

func (f File) hash() [32]byte {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(data)
}
