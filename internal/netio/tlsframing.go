package netio

// TLSFraming follows the TLS record layer over the bytes read from a socket: each record is
// a 5-byte header (type, version, 16-bit length) and that many bytes. A reader under
// crypto/tls that found no plaintext can then tell whether crypto/tls holds the start of a
// record (the rest is in flight) or nothing.
type TLSFraming struct {
	hdr   int // header bytes seen of the current record, 0-4
	typ   byte
	lenHi byte
	left  int // body bytes still to come of the current record
}

// Feed follows b, the next bytes read.
func (f *TLSFraming) Feed(b []byte) {
	for len(b) > 0 {
		if f.left > 0 {
			k := min(f.left, len(b))
			f.left -= k
			b = b[k:]
			continue
		}
		switch f.hdr {
		case 0:
			f.typ = b[0]
		case 3:
			f.lenHi = b[0]
		case 4:
			f.left = int(f.lenHi)<<8 | int(b[0])
		}
		f.hdr = (f.hdr + 1) % 5
		b = b[1:]
	}
}

// AtBoundary reports whether the bytes fed so far end with a whole record.
func (f *TLSFraming) AtBoundary() bool { return f.hdr == 0 && f.left == 0 }

// Type is the content type of the last record begun (21: alert), 0 before any. It is the
// record layer's, seen before decryption: TLS 1.3 protects every record as application
// data (23) once its keys are in place, so another type there was sent in plaintext.
func (f *TLSFraming) Type() byte { return f.typ }
