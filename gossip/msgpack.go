package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxWireDepth bounds the nesting of a peer's msgpack value. Serf's deepest
// message (push/pull: map > Events array > map > Events array > map) nests
// five levels; the margin leaves room for fields added by newer peers.
const maxWireDepth = 32

var errTruncated = errors.New("truncated msgpack value")

// scanValue checks that b starts with one well-formed msgpack value no deeper
// than maxDepth whose every declared length fits inside b, and returns its
// length in bytes. It runs before the codec ever sees peer input, so the codec
// is handed only complete, bounded values. It never panics.
func scanValue(b []byte, maxDepth int) (int, error) {
	return scan(b, 0, maxDepth)
}

func scan(b []byte, depth, maxDepth int) (int, error) {
	if len(b) == 0 {
		return 0, errTruncated
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return 1, nil
	case c <= 0x8f: // fixmap
		return scanItems(b, 1, 2*int(c&0x0f), depth, maxDepth)
	case c <= 0x9f: // fixarray
		return scanItems(b, 1, int(c&0x0f), depth, maxDepth)
	case c <= 0xbf: // fixstr (a raw string in the old spec)
		return fixed(b, 1+int(c&0x1f))
	}
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return 1, nil
	case 0xcc, 0xd0:
		return fixed(b, 2)
	case 0xcd, 0xd1:
		return fixed(b, 3)
	case 0xca, 0xce, 0xd2:
		return fixed(b, 5)
	case 0xcb, 0xcf, 0xd3:
		return fixed(b, 9)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+1 type byte)
		return fixed(b, 2+(1<<(c-0xd4)))
	case 0xc4, 0xd9: // bin8, str8
		n, hdr, err := length(b, 1)
		if err != nil {
			return 0, err
		}
		return fixed(b, hdr+n)
	case 0xc5, 0xda: // bin16, str16
		n, hdr, err := length(b, 2)
		if err != nil {
			return 0, err
		}
		return fixed(b, hdr+n)
	case 0xc6, 0xdb: // bin32, str32
		n, hdr, err := length(b, 4)
		if err != nil {
			return 0, err
		}
		return fixed(b, hdr+n)
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32 (+1 type byte)
		n, hdr, err := length(b, 1<<(c-0xc7))
		if err != nil {
			return 0, err
		}
		return fixed(b, hdr+1+n)
	case 0xdc, 0xdd: // array16, array32
		n, hdr, err := length(b, 2<<(c-0xdc))
		if err != nil {
			return 0, err
		}
		return scanItems(b, hdr, n, depth, maxDepth)
	case 0xde, 0xdf: // map16, map32
		n, hdr, err := length(b, 2<<(c-0xde))
		if err != nil {
			return 0, err
		}
		return scanItems(b, hdr, 2*n, depth, maxDepth)
	}
	return 0, fmt.Errorf("invalid msgpack type byte 0x%02x", c)
}

// length reads a big-endian length of size bytes after the type byte and
// returns it with the header size.
func length(b []byte, size int) (n, hdr int, err error) {
	if len(b) < 1+size {
		return 0, 0, errTruncated
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(b[1])
	case 2:
		v = uint64(binary.BigEndian.Uint16(b[1:]))
	default:
		v = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	if v > uint64(len(b)) { // cannot fit; also keeps the int conversion safe
		return 0, 0, errTruncated
	}
	return int(v), 1 + size, nil
}

func fixed(b []byte, n int) (int, error) {
	if n > len(b) {
		return 0, errTruncated
	}
	return n, nil
}

// scanItems scans count values starting at b[off:].
func scanItems(b []byte, off, count, depth, maxDepth int) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("msgpack value nested deeper than %d", maxDepth)
	}
	// Every value takes at least one byte: reject impossible counts early.
	if count > len(b)-off {
		return 0, errTruncated
	}
	for i := 0; i < count; i++ {
		n, err := scan(b[off:], depth+1, maxDepth)
		if err != nil {
			return 0, err
		}
		off += n
	}
	return off, nil
}

// isMapHeader reports whether c starts a msgpack map.
func isMapHeader(c byte) bool {
	return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf
}
