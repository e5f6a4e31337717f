package ctl

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
)

// The subset of MessagePack that Serf's RPC uses, so that ctl stays
// standard library only: nil, booleans, integers, floats, str, bin,
// arrays and maps with string keys. Structs travel as maps keyed by their
// exported field names (what Serf's codec does), []byte as bin, other
// strings as str; ext values are refused. Decoding never trusts a length:
// strings and binaries are read in bounded chunks, arrays and maps grow
// as their elements arrive, and nesting is bounded.

const (
	mpMaxBytes = 16 << 20 // longest str or bin accepted
	mpMaxDepth = 32       // deepest nesting accepted
)

var errMsgpackDepth = errors.New("msgpack: nesting too deep")

// mpEncode appends v's encoding to b.
func mpEncode(b []byte, v any) ([]byte, error) {
	return mpEncodeValue(b, reflect.ValueOf(v))
}

func mpEncodeValue(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, 0xc0), nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 0xc0), nil
		}
		return mpEncodeValue(b, v.Elem())
	case reflect.Bool:
		if v.Bool() {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return mpInt(b, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return mpUint(b, v.Uint()), nil
	case reflect.Float32:
		return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(float32(v.Float()))), nil
	case reflect.Float64:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v.Float())), nil
	case reflect.String:
		s := v.String()
		return append(mpHead(b, len(s), 0xa0, 32, 0xd9), s...), nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, 0xc0), nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			raw := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(raw), v)
			return append(mpHead(b, len(raw), 0, 0, 0xc4), raw...), nil
		}
		b = mpHead(b, v.Len(), 0x90, 16, 0xdc)
		for i := range v.Len() {
			var err error
			if b, err = mpEncodeValue(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Map:
		if v.IsNil() {
			return append(b, 0xc0), nil
		}
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("msgpack: cannot encode a map keyed by %s", v.Type().Key())
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = mpHead(b, len(keys), 0x80, 16, 0xde)
		for _, k := range keys {
			var err error
			if b, err = mpEncodeValue(b, k); err != nil {
				return nil, err
			}
			if b, err = mpEncodeValue(b, v.MapIndex(k)); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Struct:
		t := v.Type()
		var fields []int
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				fields = append(fields, i)
			}
		}
		b = mpHead(b, len(fields), 0x80, 16, 0xde)
		for _, i := range fields {
			b = mpHead(b, len(t.Field(i).Name), 0xa0, 32, 0xd9)
			b = append(b, t.Field(i).Name...)
			var err error
			if b, err = mpEncodeValue(b, v.Field(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("msgpack: cannot encode %s", v.Type())
}

// mpHead appends the header of a str, bin, array or map of n items: the
// fix form (fix|n) when n < fixMax, else the 8-, 16- or 32-bit form, whose
// first code is code8 (str8, bin8) or, when there is no 8-bit form (arrays
// and maps), code8 is the 16-bit code. fixMax 0: no fix form (bin).
func mpHead(b []byte, n int, fix byte, fixMax int, code8 byte) []byte {
	switch {
	case n < fixMax:
		return append(b, fix|byte(n))
	case code8 == 0xdc || code8 == 0xde: // array 16/32, map 16/32
		if n <= math.MaxUint16 {
			return binary.BigEndian.AppendUint16(append(b, code8), uint16(n))
		}
		return binary.BigEndian.AppendUint32(append(b, code8+1), uint32(n))
	case n <= math.MaxUint8:
		return append(b, code8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code8+1), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code8+2), uint32(n))
}

func mpUint(b []byte, n uint64) []byte {
	switch {
	case n < 128:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

func mpInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return mpUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// mpDecoder reads values one after the other from a stream.
type mpDecoder struct {
	r *bufio.Reader
}

// decode reads the next value into the value v points to (nil: read and
// drop it). A map's unknown keys, and fields absent from it, are left as
// they are; a value of the wrong type for its target is an error.
func (d *mpDecoder) decode(v any) error {
	if v == nil {
		return d.value(reflect.Value{}, 0)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("msgpack: decode into %T, not a pointer", v)
	}
	return d.value(rv.Elem(), 0)
}

func (d *mpDecoder) byte1() (byte, error) {
	c, err := d.r.ReadByte()
	if err != nil {
		return 0, mpEOF(err)
	}
	return c, nil
}

// mpEOF turns an EOF inside a value into io.ErrUnexpectedEOF.
func mpEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (d *mpDecoder) uintN(size int) (uint64, error) {
	var buf [8]byte
	if _, err := io.ReadFull(d.r, buf[8-size:]); err != nil {
		return 0, mpEOF(err)
	}
	return binary.BigEndian.Uint64(buf[:]), nil
}

// raw reads n bytes, in chunks so that a lying length costs no more
// memory than the bytes that really came.
func (d *mpDecoder) raw(n uint64) ([]byte, error) {
	if n > mpMaxBytes {
		return nil, fmt.Errorf("msgpack: %d bytes is more than the %d accepted", n, mpMaxBytes)
	}
	var out []byte
	for left := int(n); left > 0; {
		chunk := min(left, 64<<10)
		start := len(out)
		out = append(out, make([]byte, chunk)...)
		if _, err := io.ReadFull(d.r, out[start:]); err != nil {
			return nil, mpEOF(err)
		}
		left -= chunk
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// value reads one value into dst (invalid: dropped).
func (d *mpDecoder) value(dst reflect.Value, depth int) error {
	if depth > mpMaxDepth {
		return errMsgpackDepth
	}
	c, err := d.byte1()
	if err != nil {
		return err
	}
	switch {
	case c <= 0x7f:
		return setUint(dst, uint64(c))
	case c >= 0xe0:
		return setInt(dst, int64(int8(c)))
	case c&0xf0 == 0x80:
		return d.mapInto(dst, uint64(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.arrayInto(dst, uint64(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		return d.bytesInto(dst, uint64(c&0x1f), true)
	}
	switch c {
	case 0xc0:
		if dst.IsValid() {
			dst.SetZero()
		}
		return nil
	case 0xc2, 0xc3:
		return setBool(dst, c == 0xc3)
	case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb: // bin 8/16/32, str 8/16/32
		size := map[byte]int{0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}[c]
		n, err := d.uintN(size)
		if err != nil {
			return err
		}
		return d.bytesInto(dst, n, c >= 0xd9)
	case 0xca:
		n, err := d.uintN(4)
		if err != nil {
			return err
		}
		return setFloat(dst, float64(math.Float32frombits(uint32(n))))
	case 0xcb:
		n, err := d.uintN(8)
		if err != nil {
			return err
		}
		return setFloat(dst, math.Float64frombits(n))
	case 0xcc, 0xcd, 0xce, 0xcf:
		n, err := d.uintN(1 << (c - 0xcc))
		if err != nil {
			return err
		}
		return setUint(dst, n)
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size := 1 << (c - 0xd0)
		n, err := d.uintN(size)
		if err != nil {
			return err
		}
		shift := 64 - 8*size // sign-extend
		return setInt(dst, int64(n<<shift)>>shift)
	case 0xdc, 0xdd, 0xde, 0xdf:
		n, err := d.uintN(2 << ((c - 0xdc) % 2))
		if err != nil {
			return err
		}
		if c >= 0xde {
			return d.mapInto(dst, n, depth)
		}
		return d.arrayInto(dst, n, depth)
	}
	return fmt.Errorf("msgpack: type code 0x%02x is not used by Serf's RPC", c)
}

func mismatch(dst reflect.Value, what string) error {
	return fmt.Errorf("msgpack: cannot decode %s into %s", what, dst.Type())
}

func setBool(dst reflect.Value, b bool) error {
	switch {
	case !dst.IsValid():
	case dst.Kind() == reflect.Bool:
		dst.SetBool(b)
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		dst.Set(reflect.ValueOf(b))
	default:
		return mismatch(dst, "a boolean")
	}
	return nil
}

func setUint(dst reflect.Value, n uint64) error {
	if n > math.MaxInt64 {
		switch dst.Kind() {
		case reflect.Uint, reflect.Uint64, reflect.Uintptr:
			dst.SetUint(n)
			return nil
		case reflect.Interface:
			if dst.NumMethod() == 0 {
				dst.Set(reflect.ValueOf(n))
				return nil
			}
		case reflect.Invalid:
			return nil
		}
		return mismatch(dst, fmt.Sprint(n))
	}
	return setInt(dst, int64(n))
}

func setInt(dst reflect.Value, n int64) error {
	switch dst.Kind() {
	case reflect.Invalid:
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if dst.OverflowInt(n) {
			return mismatch(dst, fmt.Sprint(n))
		}
		dst.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n < 0 || dst.OverflowUint(uint64(n)) {
			return mismatch(dst, fmt.Sprint(n))
		}
		dst.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		dst.SetFloat(float64(n))
	case reflect.Interface:
		if dst.NumMethod() != 0 {
			return mismatch(dst, "an integer")
		}
		dst.Set(reflect.ValueOf(n))
	default:
		return mismatch(dst, "an integer")
	}
	return nil
}

func setFloat(dst reflect.Value, f float64) error {
	switch {
	case !dst.IsValid():
	case dst.Kind() == reflect.Float32 || dst.Kind() == reflect.Float64:
		dst.SetFloat(f)
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		dst.Set(reflect.ValueOf(f))
	default:
		return mismatch(dst, "a float")
	}
	return nil
}

// bytesInto reads a str or bin of n bytes: into a string, a byte slice
// (net.IP too) or an interface (string for str, []byte for bin).
func (d *mpDecoder) bytesInto(dst reflect.Value, n uint64, isStr bool) error {
	b, err := d.raw(n)
	if err != nil {
		return err
	}
	switch {
	case !dst.IsValid():
	case dst.Kind() == reflect.String:
		dst.SetString(string(b))
	case dst.Kind() == reflect.Slice && dst.Type().Elem().Kind() == reflect.Uint8:
		dst.SetBytes(b) // net.IP too
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		if isStr {
			dst.Set(reflect.ValueOf(string(b)))
		} else {
			dst.Set(reflect.ValueOf(b))
		}
	default:
		return mismatch(dst, "a string")
	}
	return nil
}

func (d *mpDecoder) arrayInto(dst reflect.Value, n uint64, depth int) error {
	switch {
	case !dst.IsValid():
		for range n {
			if err := d.value(reflect.Value{}, depth+1); err != nil {
				return err
			}
		}
		return nil
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		var items []any
		for range n {
			var item any
			if err := d.value(reflect.ValueOf(&item).Elem(), depth+1); err != nil {
				return err
			}
			items = append(items, item)
		}
		if items == nil {
			items = []any{}
		}
		dst.Set(reflect.ValueOf(items))
		return nil
	case dst.Kind() != reflect.Slice:
		return mismatch(dst, "an array")
	}
	out := reflect.MakeSlice(dst.Type(), 0, 0)
	for range n {
		item := reflect.New(dst.Type().Elem()).Elem()
		if err := d.value(item, depth+1); err != nil {
			return err
		}
		out = reflect.Append(out, item)
	}
	dst.Set(out)
	return nil
}

func (d *mpDecoder) key() (string, error) {
	var k string
	if err := d.value(reflect.ValueOf(&k).Elem(), mpMaxDepth); err != nil {
		return "", fmt.Errorf("msgpack: map key: %w", err)
	}
	return k, nil
}

func (d *mpDecoder) mapInto(dst reflect.Value, n uint64, depth int) error {
	switch {
	case !dst.IsValid():
	case dst.Kind() == reflect.Struct:
		for range n {
			k, err := d.key()
			if err != nil {
				return err
			}
			f := dst.FieldByName(k)
			if f.IsValid() && !f.CanSet() {
				f = reflect.Value{} // unexported: dropped
			}
			if err := d.value(f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case dst.Kind() == reflect.Map && dst.Type().Key().Kind() == reflect.String:
		m := reflect.MakeMap(dst.Type())
		for range n {
			k, err := d.key()
			if err != nil {
				return err
			}
			item := reflect.New(dst.Type().Elem()).Elem()
			if err := d.value(item, depth+1); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), item)
		}
		dst.Set(m)
		return nil
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		m := map[string]any{}
		if err := d.mapInto(reflect.ValueOf(&m).Elem(), n, depth); err != nil {
			return err
		}
		dst.Set(reflect.ValueOf(m))
		return nil
	default:
		return mismatch(dst, "a map")
	}
	for range 2 * n { // dropped: keys and values alike
		if err := d.value(reflect.Value{}, depth+1); err != nil {
			return err
		}
	}
	return nil
}
