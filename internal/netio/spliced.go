package netio

// Spliced is what one [Splice] did.
type Spliced struct {
	// Taken counts the bytes read from the source, Moved those that reached the
	// destination: they differ only after a WriteErr.
	Taken, Moved int64
	// ReadErr is set when the source ended early or failed, WriteErr when the destination
	// failed; both nil when all n bytes moved.
	ReadErr, WriteErr error
}

// Err returns the error that stopped the move, if any.
func (s Spliced) Err() error {
	if s.ReadErr != nil {
		return s.ReadErr
	}
	return s.WriteErr
}
