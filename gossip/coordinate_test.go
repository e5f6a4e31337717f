package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/serfd/serfd/internal/testutil"
)

func testVivaldi(seed uint64) *vivaldi {
	return newVivaldi(defaultVivaldiConfig(), rand.New(rand.NewPCG(seed, seed+1)))
}

// simulate runs rounds in which every node pings a random other node whose
// true RTT is truth[i][j], and returns the clients.
func simulate(t *testing.T, truth [][]time.Duration, rounds int) []*vivaldi {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	clients := make([]*vivaldi, len(truth))
	for i := range clients {
		clients[i] = testVivaldi(uint64(i))
	}
	for range rounds {
		for i, c := range clients {
			j := rng.IntN(len(clients) - 1)
			if j >= i {
				j++
			}
			other := clients[j].coord.clone()
			if _, err := c.update(strconv.Itoa(j), other, truth[i][j]); err != nil {
				t.Fatalf("update(%d -> %d, %v) = %v; want nil", i, j, truth[i][j], err)
			}
		}
	}
	return clients
}

// checkEstimates fails if any estimated RTT misses the truth by more than tol.
func checkEstimates(t *testing.T, clients []*vivaldi, truth [][]time.Duration, tol time.Duration) {
	t.Helper()
	for i := range clients {
		for j := range clients {
			if i == j {
				continue
			}
			est := clients[i].coord.DistanceTo(&clients[j].coord)
			if diff := est - truth[i][j]; diff > tol || diff < -tol {
				t.Errorf("estimate %d<->%d = %v; want %v ± %v", i, j, est, truth[i][j], tol)
			}
		}
	}
}

func TestVivaldiConvergesOnLine(t *testing.T) {
	const n, spacing = 6, 10 * time.Millisecond
	truth := make([][]time.Duration, n)
	for i := range truth {
		truth[i] = make([]time.Duration, n)
		for j := range truth[i] {
			truth[i][j] = time.Duration(math.Abs(float64(i-j))) * spacing
		}
	}
	clients := simulate(t, truth, 1000)
	checkEstimates(t, clients, truth, 500*time.Microsecond)
	for i, c := range clients {
		if c.resets != 0 || c.coord.Error > 0.05 {
			t.Errorf("client %d: %d resets, error %v; want 0 resets, error <= 0.05", i, c.resets, c.coord.Error)
		}
	}
}

func TestVivaldiConvergesOnTriangle(t *testing.T) {
	const rtt = 20 * time.Millisecond
	truth := [][]time.Duration{{0, rtt, rtt}, {rtt, 0, rtt}, {rtt, rtt, 0}}
	clients := simulate(t, truth, 500)
	checkEstimates(t, clients, truth, 100*time.Microsecond)
}

func TestVivaldiRejects(t *testing.T) {
	good := func() *Coordinate {
		co := defaultVivaldiConfig().newCoordinate()
		co.Vec[0] = 0.01
		return &co
	}
	tests := []struct {
		name  string
		edit  func(*Coordinate)
		rtt   time.Duration
		isRTT bool
	}{
		{"NaN component", func(c *Coordinate) { c.Vec[3] = math.NaN() }, time.Millisecond, false},
		{"Inf component", func(c *Coordinate) { c.Vec[0] = math.Inf(-1) }, time.Millisecond, false},
		{"Inf error", func(c *Coordinate) { c.Error = math.Inf(1) }, time.Millisecond, false},
		{"NaN adjustment", func(c *Coordinate) { c.Adjustment = math.NaN() }, time.Millisecond, false},
		{"Inf height", func(c *Coordinate) { c.Height = math.Inf(1) }, time.Millisecond, false},
		{"negative error", func(c *Coordinate) { c.Error = -1 }, time.Millisecond, false},
		{"negative height", func(c *Coordinate) { c.Height = -1e-3 }, time.Millisecond, false},
		{"7 dimensions", func(c *Coordinate) { c.Vec = c.Vec[:7] }, time.Millisecond, false},
		{"9 dimensions", func(c *Coordinate) { c.Vec = append(c.Vec, 0) }, time.Millisecond, false},
		{"nil vector", func(c *Coordinate) { c.Vec = nil }, time.Millisecond, false},
		{"negative RTT", func(*Coordinate) {}, -time.Nanosecond, true},
		{"RTT over 10s", func(*Coordinate) {}, 10*time.Second + time.Nanosecond, true},
	}
	for _, tt := range tests {
		v := testVivaldi(1)
		before := v.coord.clone()
		co := good()
		tt.edit(co)
		_, err := v.update("peer", co, tt.rtt)
		if err == nil || errors.Is(err, errRTTRange) != tt.isRTT {
			t.Errorf("%s: update = %v; want a rejection (RTT range: %v)", tt.name, err, tt.isRTT)
		}
		if !reflect.DeepEqual(&v.coord, before) || len(v.samples) != 0 {
			t.Errorf("%s: rejected update changed the state: coord %+v, samples %v", tt.name, v.coord, v.samples)
		}
	}
	for _, rtt := range []time.Duration{0, maxCoordRTT} {
		if _, err := testVivaldi(1).update("peer", good(), rtt); err != nil {
			t.Errorf("update(rtt %v) = %v; want nil (the range is inclusive)", rtt, err)
		}
	}
}

func TestVivaldiResetsWhenInvalid(t *testing.T) {
	v := testVivaldi(1)
	far := defaultVivaldiConfig().newCoordinate()
	far.Vec[0] = math.MaxFloat64 // finite, but the distance to it is not
	reset, err := v.update("peer", &far, time.Millisecond)
	if err != nil || !reset {
		t.Fatalf("update(far) = %v, %v; want reset, nil", reset, err)
	}
	if want := defaultVivaldiConfig().newCoordinate(); v.resets != 1 || !reflect.DeepEqual(v.coord, want) {
		t.Errorf("after reset: %d resets, coord %+v; want 1, %+v", v.resets, v.coord, want)
	}
}

func TestLatencyFilterMedian(t *testing.T) {
	v := testVivaldi(1)
	for i, tt := range []struct{ in, want float64 }{
		{0.010, 0.010}, {0.100, 0.100}, {0.012, 0.012}, {0.011, 0.012}, {0.500, 0.012}, {0.013, 0.013},
	} {
		if got := v.filter("peer", tt.in); got != tt.want {
			t.Errorf("sample %d: filter(%v) = %v; want %v", i, tt.in, got, tt.want)
		}
	}
	if got := v.filter("other", 0.2); got != 0.2 {
		t.Errorf("filter(other, 0.2) = %v; want 0.2 (samples are per peer)", got)
	}
	v.forget("peer")
	if _, ok := v.samples["peer"]; ok {
		t.Errorf("forget(peer) kept its samples")
	}
}

func TestDistanceTo(t *testing.T) {
	vec := func(x ...float64) []float64 { return append(x, make([]float64, 8-len(x))...) }
	tests := []struct {
		a, b Coordinate
		want time.Duration
	}{
		{Coordinate{Vec: vec(3), Height: 0.1}, Coordinate{Vec: vec(0, 4), Height: 0.2}, 5300 * time.Millisecond},
		{Coordinate{Vec: vec(3), Height: 0.1, Adjustment: -0.1}, Coordinate{Vec: vec(0, 4), Height: 0.2, Adjustment: -0.1}, 5100 * time.Millisecond},
		{Coordinate{Vec: vec(3), Adjustment: -3}, Coordinate{Vec: vec(0, 4), Adjustment: -3}, 5 * time.Second}, // would go negative: raw
		{Coordinate{Vec: vec(1), Adjustment: 0.5}, Coordinate{Vec: vec(1)}, 500 * time.Millisecond},
		{Coordinate{Vec: []float64{3}}, Coordinate{Vec: []float64{0, 4}}, 5 * time.Second}, // padded
		{Coordinate{Vec: vec(math.MaxFloat64)}, Coordinate{Vec: vec(-math.MaxFloat64)}, math.MaxInt64},
		{Coordinate{Vec: vec(math.NaN())}, Coordinate{Vec: vec()}, math.MaxInt64},
		{Coordinate{Height: -1}, Coordinate{}, 0},
	}
	for _, tt := range tests {
		if got := tt.a.DistanceTo(&tt.b); absDur(got-tt.want) > time.Microsecond {
			t.Errorf("%+v.DistanceTo(%+v) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
		if got, rev := tt.a.DistanceTo(&tt.b), tt.b.DistanceTo(&tt.a); got != rev {
			t.Errorf("DistanceTo not symmetric: %v one way, %v the other", got, rev)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a, b := randomCoordinate(rng), randomCoordinate(rng)
		if ab, ba := a.DistanceTo(b), b.DistanceTo(a); ab != ba || ab < 0 {
			t.Fatalf("DistanceTo(%+v, %+v) = %v, reverse %v; want equal and >= 0", a, b, ab, ba)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func randomCoordinate(rng *rand.Rand) *Coordinate {
	co := defaultVivaldiConfig().newCoordinate()
	for i := range co.Vec {
		co.Vec[i] = rng.NormFloat64() * 0.01
	}
	co.Adjustment = rng.NormFloat64() * 0.001
	co.Height = rng.Float64() * 0.001
	co.Error = rng.Float64() * vivaldiErrorMax
	return &co
}

// f64 is a msgpack float64: 0xcb and the big-endian IEEE 754 bits.
func f64(x float64) string {
	b := make([]byte, 9)
	b[0] = 0xcb
	binary.BigEndian.PutUint64(b[1:], math.Float64bits(x))
	return string(b)
}

// TestAckPayloadGolden pins the ping ack payload: version 1, then a map of
// the four fields sorted by name, floats as float64, Vec as an array. The
// same coordinate encoded by go-msgpack v2.1.2 (stock Serf 0.10.2's) with
// Serf's struct gives these bytes.
func TestAckPayloadGolden(t *testing.T) {
	co := defaultVivaldiConfig().newCoordinate()
	co.Vec[0], co.Vec[7] = 0.001, -0.25
	co.Error, co.Adjustment, co.Height = 0.5, -1e-4, 2e-5
	want := "\x01\x84" +
		raw("Adjustment") + f64(-1e-4) +
		raw("Error") + f64(0.5) +
		raw("Height") + f64(2e-5) +
		raw("Vec") + "\x98" + f64(0.001) + strings.Repeat(f64(0), 6) + f64(-0.25)
	const stock = "0184aa41646a7573746d656e74cbbf1a36e2eb1c432da54572726f72cb3fe0000000000000a6486569676874cb3ef4f8b588e368f1a356656398cb3f50624dd2f1a9fccb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cbbfd0000000000000"
	if got := fmt.Sprintf("%x", want); got != stock {
		t.Fatalf("hand-built payload %s; want stock Serf's %s", got, stock)
	}
	w := newWireCodec()
	got, err := w.encodeAckPayload(&co)
	if err != nil || string(got) != want {
		t.Fatalf("encodeAckPayload(%+v) = %x, %v; want %x", co, got, err, want)
	}
	back, err := w.decodeAckPayload(got)
	if err != nil || !reflect.DeepEqual(*back, co) {
		t.Errorf("decodeAckPayload(%x) = %+v, %v; want %+v", got, back, err, co)
	}
	// Trailing bytes are ignored, as Serf ignores them.
	if _, err := w.decodeAckPayload(append(got, 0xc0)); err != nil {
		t.Errorf("decodeAckPayload(payload + trailing byte) = %v; want nil", err)
	}
}

func TestDecodeAckPayloadErrors(t *testing.T) {
	w := newWireCodec()
	co := defaultVivaldiConfig().newCoordinate()
	good, _ := w.encodeAckPayload(&co)
	bad := func(edit func(*Coordinate)) []byte {
		c := co.clone()
		edit(c)
		b, err := w.encodeAckPayload(c) // the encoder does not check
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		version bool
	}{
		{"empty", nil, false},
		{"version 0", append([]byte{0}, good[1:]...), true},
		{"version 2", append([]byte{2}, good[1:]...), true},
		{"version only", []byte{pingVersion}, false},
		{"truncated", good[:len(good)-1], false},
		{"not a map", []byte{pingVersion, 0x93, 1, 2, 3}, false},
		{"vec is a string", []byte{pingVersion, 0x81, 0xa3, 'V', 'e', 'c', 0xa1, 'x'}, false},
		{"7 dimensions", bad(func(c *Coordinate) { c.Vec = c.Vec[:7] }), false},
		{"NaN height", bad(func(c *Coordinate) { c.Height = math.NaN() }), false},
		{"Inf component", bad(func(c *Coordinate) { c.Vec[1] = math.Inf(1) }), false},
	}
	for _, tt := range tests {
		co, err := w.decodeAckPayload(tt.in)
		if err == nil || errors.Is(err, errPingVersion) != tt.version {
			t.Errorf("decodeAckPayload(%s %x) = %+v, %v; want an error (version error: %v)", tt.name, tt.in, co, err, tt.version)
		}
	}
}

// FuzzDecodeAckPayload: the decoder never panics, and whatever it accepts is
// a usable coordinate that survives a round trip.
func FuzzDecodeAckPayload(f *testing.F) {
	w := newWireCodec()
	co := defaultVivaldiConfig().newCoordinate()
	good, _ := w.encodeAckPayload(&co)
	f.Add(good)
	co.Vec[2], co.Adjustment, co.Height = -0.5, 0.001, 1
	moved, _ := w.encodeAckPayload(&co)
	f.Add(moved)
	f.Add([]byte{})
	f.Add([]byte{pingVersion})
	f.Add([]byte{2, 0x80})
	f.Add([]byte{pingVersion, 0x80})
	f.Add([]byte{pingVersion, 0x81, 0xa3, 'V', 'e', 'c', 0xc0})
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		co, err := w.decodeAckPayload(data)
		if err != nil {
			return
		}
		if err := co.check(coordDimensions); err != nil {
			t.Fatalf("decodeAckPayload(%x) accepted an unusable coordinate: %v", data, err)
		}
		again, err := w.encodeAckPayload(co)
		if err != nil {
			t.Fatalf("encodeAckPayload(%+v) = %v", co, err)
		}
		back, err := w.decodeAckPayload(again)
		if err != nil || !reflect.DeepEqual(back, co) {
			t.Fatalf("round trip of %+v = %+v, %v", co, back, err)
		}
		if d := co.DistanceTo(back); d < 0 {
			t.Fatalf("DistanceTo(self) = %v; want >= 0", d)
		}
		v := testVivaldi(1)
		v.update("peer", co, time.Millisecond)
		if err := v.coord.check(coordDimensions); err != nil {
			t.Fatalf("local coordinate unusable after an update from %+v: %v", co, err)
		}
	})
}

// bareWithCoordinates is a bare Cluster with coordinates enabled, knowing
// itself and "peer".
func bareWithCoordinates(t *testing.T) *Cluster {
	c := newBare(t, "a")
	var mc memberlist.Config
	c.enableCoordinates(&mc)
	if mc.Ping == nil || c.coords == nil {
		t.Fatalf("enableCoordinates did not install the ping delegate")
	}
	join(c, "a", nil)
	join(c, "peer", nil)
	drain(c)
	return c
}

func TestPingDelegate(t *testing.T) {
	c := bareWithCoordinates(t)
	d := pingDelegate{c: c}
	peer := &memberlist.Node{Name: "peer"}

	payload := d.AckPayload()
	if len(payload) == 0 || payload[0] != pingVersion {
		t.Fatalf("AckPayload() = %x; want version 1 and a coordinate", payload)
	}
	if co, err := c.wire.decodeAckPayload(payload); err != nil || !reflect.DeepEqual(co, c.LocalCoordinate()) {
		t.Errorf("decoded AckPayload() = %+v, %v; want LocalCoordinate %+v", co, err, c.LocalCoordinate())
	}

	d.NotifyPingComplete(peer, time.Millisecond, nil)
	d.NotifyPingComplete(peer, time.Millisecond, append([]byte{2}, payload[1:]...))
	d.NotifyPingComplete(peer, time.Millisecond, payload[:5])
	d.NotifyPingComplete(peer, time.Minute, payload)
	if co, ok := c.Coordinate("peer"); ok {
		t.Fatalf("Coordinate(peer) = %+v after only unusable acks; want none", co)
	}

	theirs := defaultVivaldiConfig().newCoordinate()
	theirs.Vec[0] = 0.002
	pp, _ := c.wire.encodeAckPayload(&theirs)
	before := c.LocalCoordinate()
	d.NotifyPingComplete(peer, 3*time.Millisecond, pp)
	if co, ok := c.Coordinate("peer"); !ok || !reflect.DeepEqual(*co, theirs) {
		t.Errorf("Coordinate(peer) = %+v, %v; want %+v, true", co, ok, theirs)
	}
	if after := c.LocalCoordinate(); reflect.DeepEqual(after, before) {
		t.Errorf("LocalCoordinate unchanged after an RTT sample: %+v", after)
	}
	if self, ok := c.Coordinate("a"); !ok || !reflect.DeepEqual(self, c.LocalCoordinate()) {
		t.Errorf("Coordinate(self) = %+v, %v; want LocalCoordinate", self, ok)
	}

	// Copies: changing what we got changes nothing inside.
	co, _ := c.Coordinate("peer")
	co.Vec[0] = 99
	local := c.LocalCoordinate()
	local.Vec[0] = 99
	if again, _ := c.Coordinate("peer"); again.Vec[0] != 0.002 || c.LocalCoordinate().Vec[0] == 99 {
		t.Errorf("Coordinate and LocalCoordinate return shared slices")
	}

	// Not a member: dropped. Reaped: forgotten.
	d.NotifyPingComplete(&memberlist.Node{Name: "stranger"}, time.Millisecond, pp)
	if _, ok := c.Coordinate("stranger"); ok {
		t.Errorf("Coordinate(stranger) cached for a node that is not a member")
	}
	c.memberMu.Lock()
	c.eraseLocked(c.members["peer"])
	c.memberMu.Unlock()
	if _, ok := c.Coordinate("peer"); ok {
		t.Errorf("Coordinate(peer) still cached after the member was erased")
	}
	if _, ok := c.coords.client.samples["peer"]; ok {
		t.Errorf("RTT samples of peer kept after the member was erased")
	}
}

func TestCoordinatesDisabled(t *testing.T) {
	c := newBare(t, "a")
	c.cfg.DisableCoordinates = true
	var mc memberlist.Config
	c.enableCoordinates(&mc)
	if mc.Ping != nil {
		t.Errorf("DisableCoordinates: memberlist ping delegate installed")
	}
	if co := c.LocalCoordinate(); co != nil {
		t.Errorf("DisableCoordinates: LocalCoordinate() = %+v; want nil", co)
	}
	if co, ok := c.Coordinate("a"); ok || co != nil {
		t.Errorf("DisableCoordinates: Coordinate(self) = %+v, %v; want nil, false", co, ok)
	}
	c.forgetCoordinate("a") // must not panic
	if n := c.coordinateResets(); n != 0 {
		t.Errorf("DisableCoordinates: coordinateResets() = %d; want 0", n)
	}
}

// TestCoordinatesOverMemberlist: after some probe rounds on real memberlist,
// every node holds a usable coordinate for every other.
func TestCoordinatesOverMemberlist(t *testing.T) {
	nodes := threeNodes(t)
	names := []string{"a", "b", "c"}
	for _, n := range nodes {
		self := n.LocalMember().Name
		for _, other := range names {
			testutil.WaitFor(t, settle, self+" to cache the coordinate of "+other, func() bool {
				_, ok := n.Coordinate(other)
				return ok
			})
		}
	}
	for _, n := range nodes {
		self := n.LocalCoordinate()
		for _, other := range names {
			co, _ := n.Coordinate(other)
			if err := co.check(coordDimensions); err != nil {
				t.Errorf("%s: Coordinate(%s) = %+v: %v", n.LocalMember().Name, other, co, err)
			}
			if d := self.DistanceTo(co); d < 0 || d == math.MaxInt64 {
				t.Errorf("%s: DistanceTo(%s) = %v; want finite and >= 0", n.LocalMember().Name, other, d)
			}
		}
		if r := n.Stats().CoordinateResets; r != 0 {
			t.Errorf("%s: Stats().CoordinateResets = %d; want 0", n.LocalMember().Name, r)
		}
	}
}

// TestCoordinatesInteropWithStockSerf: a stock serf agent and a gossip node
// each decode the other's ping ack coordinate.
func TestCoordinatesInteropWithStockSerf(t *testing.T) {
	bin := testutil.SerfBin(t)
	const ip = "127.0.0.7"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	serfLog := startStockAgent(t, bin, "s1", ip, gossipPort, rpc)

	g := newNode(t, "g", 8, nil)
	if n, err := g.Join(t.Context(), []string{net.JoinHostPort(ip, strconv.Itoa(gossipPort))}, true); n != 1 || err != nil {
		t.Fatalf("Join(s1) = %d, %v; want 1, nil", n, err)
	}
	testutil.WaitFor(t, settle, "g to decode s1's ping ack coordinate", func() bool {
		_, ok := g.Coordinate("s1")
		return ok
	})
	co, _ := g.Coordinate("s1")
	if d := g.LocalCoordinate().DistanceTo(co); d < 0 || d == math.MaxInt64 {
		t.Errorf("DistanceTo(s1) = %v; want finite and >= 0", d)
	}

	var out []byte
	testutil.WaitFor(t, settle, "`serf rtt g` to answer (s1 decoded our coordinate)", func() bool {
		var err error
		out, err = exec.Command(bin, "rtt", "-rpc-addr", rpc, "g").CombinedOutput()
		return err == nil
	})
	if !strings.Contains(string(out), "Estimated g <-> s1 rtt:") {
		t.Errorf("serf rtt g = %q; want an estimate between g and s1", out)
	}
	for _, line := range strings.Split(serfLog.String(), "\n") {
		if strings.Contains(line, "[ERR]") || strings.Contains(line, "coordinate") || strings.Contains(line, "ping version") {
			t.Errorf("stock serf logged %q; want no complaint about our ping acks", line)
		}
	}
}
