package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// pingVersion is the first byte of a ping ack payload that carries a
// coordinate. Never send any other.
const pingVersion = 1

// coordinateMsg is a coordinate as it travels after the version byte of a
// ping ack payload. Like the message bodies in messages.go, its field names
// and types are Serf's wire format: do not rename, retype or tag them.
type coordinateMsg struct {
	Vec        []float64
	Error      float64
	Adjustment float64
	Height     float64
}

var errPingVersion = errors.New("unsupported ping version")

// encodeAckPayload returns the ping ack payload for co: the version byte
// followed by the msgpack coordinate.
func (w *wireCodec) encodeAckPayload(co *Coordinate) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(pingVersion)
	if err := codec.NewEncoder(&buf, w.enc).Encode(coordinateMsg(*co)); err != nil {
		return nil, fmt.Errorf("encode ping ack coordinate: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeAckPayload decodes and checks a peer's non-empty ping ack payload.
// Bytes after the coordinate are ignored, as Serf ignores them.
func (w *wireCodec) decodeAckPayload(payload []byte) (*Coordinate, error) {
	if len(payload) == 0 {
		return nil, errors.New("empty ping ack payload")
	}
	if payload[0] != pingVersion {
		return nil, fmt.Errorf("%w %d", errPingVersion, payload[0])
	}
	var m coordinateMsg
	if _, err := w.decodeMap(payload[1:], &m); err != nil {
		return nil, fmt.Errorf("decode ping ack coordinate: %w", err)
	}
	co := Coordinate(m)
	if err := co.check(coordDimensions); err != nil {
		return nil, err
	}
	return &co, nil
}

// enableCoordinates creates the coordinate state and installs the ping
// delegate in mc, unless Config.DisableCoordinates is set (then acks carry
// no payload). Call it before memberlist.Create.
func (c *Cluster) enableCoordinates(mc *memberlist.Config) {
	if c.cfg.DisableCoordinates {
		return
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	c.coords = newCoordState(defaultVivaldiConfig(), rng)
	mc.Ping = pingDelegate{c: c}
}

// pingDelegate puts the local coordinate in every ping ack and updates it
// from the RTT and coordinate of every ack received. memberlist calls it from
// its packet and probe goroutines; neither method blocks.
type pingDelegate struct {
	c *Cluster
}

var _ memberlist.PingDelegate = pingDelegate{}

// AckPayload returns the version byte and our coordinate.
func (d pingDelegate) AckPayload() []byte {
	co := d.c.LocalCoordinate()
	buf, err := d.c.wire.encodeAckPayload(co)
	if err != nil {
		// Stock nodes ignore an empty payload.
		d.c.log.Error("cannot encode ping ack payload; sending none", "ERROR", err)
		return nil
	}
	return buf
}

// NotifyPingComplete handles the ack to one of our direct pings.
func (d pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if len(payload) == 0 {
		return // a peer with coordinates disabled
	}
	c := d.c
	co, err := c.wire.decodeAckPayload(payload)
	switch {
	case errors.Is(err, errPingVersion):
		c.log.Error("dropping ping ack payload", "SERF_MEMBER", other.Name, "ERROR", err)
		return
	case err != nil:
		c.log.Warn("dropping malformed ping ack payload", "SERF_MEMBER", other.Name,
			"BYTES", len(payload), "ERROR", err)
		return
	}
	c.updateCoordinate(other.Name, co, rtt)
}

// updateCoordinate applies an RTT sample to node, whose coordinate is co,
// and caches co. Samples from nodes that are not members (reaped meanwhile)
// are dropped, so the cache never outlives the member.
func (c *Cluster) updateCoordinate(node string, co *Coordinate, rtt time.Duration) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if _, ok := c.members[node]; !ok {
		return
	}
	c.coords.mu.Lock()
	reset, err := c.coords.client.update(node, co, rtt)
	if err == nil {
		c.coords.cache[node] = co
	}
	c.coords.mu.Unlock()
	switch {
	case err != nil:
		c.log.Warn("rejected coordinate", "SERF_MEMBER", node, "RTT", rtt.String(), "ERROR", err)
	case reset:
		c.log.Warn("local coordinate became invalid; reset it to the origin", "SERF_MEMBER", node)
	}
}
