//go:build !linux

package netio

import "errors"

// Pipe is splice(2)'s pipe; splice exists only on Linux.
type Pipe struct{}

// NewPipe returns errors.ErrUnsupported: callers copy through a buffer instead.
func NewPipe() (*Pipe, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (p *Pipe) Close() {}

// Splice is never called: NewPipe fails.
func (p *Pipe) Splice(dst, src *Conn, n int64, beforeRead, beforeWrite func()) Spliced {
	return Spliced{ReadErr: errors.ErrUnsupported}
}
