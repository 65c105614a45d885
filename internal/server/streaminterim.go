package server

import "sluice/internal/h1"

// WriteInterim sends the interim response status with fields h to the client now: a
// HEADERS frame that does not end the stream (RFC 9113 §8.1), flushed
// (proxy.InterimWriter). The connection-specific fields an HTTP/1.1 upstream may send are
// left out, as in the final head, and so is a content-length (RFC 9110 §8.6: never in a
// 1xx). sent is false, and nothing was written, when the status
// is not 1xx or is 101, or the final head was written.
func (s *Stream) WriteInterim(status int, _ []byte, h *h1.Header) (sent bool, err error) {
	if s.wroteHead || status < 100 || status > 199 || status == 101 {
		return false, nil
	}
	x := &s.x
	// :status as a literal with the static table's name (index 8): no 1xx is in the table.
	b := append(x.hbuf[:0], 0x08, 3, byte('0'+status/100%10), byte('0'+status/10%10), byte('0'+status%10))
	if h != nil {
		for _, f := range h.Fields {
			if isConnectionField(f.Name) || h1.EqualFold(f.Name, "Content-Length") {
				continue
			}
			b = appendLiteral(b, f.Name, f.Value)
		}
	}
	x.hbuf = b
	s.appendHeaderFrames(0)
	if err := s.pushOwn(); err != nil {
		return false, err
	}
	return true, nil
}
