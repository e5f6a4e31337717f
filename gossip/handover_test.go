package gossip

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// A handover packet opens only under the key and kind it was sealed with,
// untampered; what does not start with the magic is not one; garbage and
// oversized packets are refused without a panic.
func TestHandoverSealing(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{9}, 16)
	body := handoverBody{Node: "n1", At: time.Now().UnixNano(), Keys: []string{"k1", "k2"}}
	pkt, err := sealHandover(key, handoverReply, body)
	if err != nil {
		t.Fatal(err)
	}
	if !isHandover(pkt) {
		t.Fatal("a sealed packet is not recognised as a handover packet")
	}
	got, err := openHandover(key, handoverReply, pkt)
	if err != nil || got.Node != "n1" || got.At != body.At || strings.Join(got.Keys, ",") != "k1,k2" {
		t.Errorf("openHandover = %+v, %v; want %+v", got, err, body)
	}
	if _, err := openHandover(other, handoverReply, pkt); err == nil {
		t.Error("a packet opened under another key")
	}
	if _, err := openHandover(key, handoverRequest, pkt); err == nil {
		t.Error("a reply opened as a request")
	}
	tampered := bytes.Clone(pkt)
	tampered[len(tampered)-1] ^= 1
	if _, err := openHandover(key, handoverReply, tampered); err == nil {
		t.Error("a tampered packet opened")
	}
	for _, junk := range [][]byte{nil, []byte(handoverMagic), append([]byte(handoverMagic), handoverReply, 1, 2),
		append(append([]byte(handoverMagic), handoverReply), make([]byte, maxHandoverPacket)...)} {
		if _, err := openHandover(key, handoverReply, junk); err == nil {
			t.Errorf("openHandover(%d bytes of junk) succeeded", len(junk))
		}
	}
	// memberlist's packets start with a message type, an encryption
	// version or a label header, never with the magic's first byte.
	for _, first := range []byte{0, 1, 2, 13, 244} {
		if isHandover([]byte{first, 's', 'e'}) {
			t.Errorf("a packet starting with %d taken for a handover packet", first)
		}
	}
}

// Packets that start with the magic, whatever follows, go to the
// handover and not to memberlist, and none of them upsets the node: it
// still takes a join afterwards.
func TestHandoverJunkPackets(t *testing.T) {
	n1 := newNode(t, "ho1", 201, nil)
	conn, err := net.Dial("udp", n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key := bytes.Repeat([]byte{3}, 16)
	sealed, err := sealHandover(key, handoverRequest, handoverBody{Node: "x", At: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{[]byte(handoverMagic), append([]byte(handoverMagic), 1), append([]byte(handoverMagic), 2, 3, 4),
		append([]byte(handoverMagic), 99), sealed} {
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	n2 := newNode(t, "ho2", 202, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n2.Join(ctx, []string{n1.addr}, true); err != nil {
		t.Fatalf("join after the junk packets: %v", err)
	}
	testutil.Poll(t, 20*time.Second, "ho1 to see ho2 alive", func() (bool, string) {
		return memberStatus(n1.Cluster, "ho2") == StatusAlive, memberStatus(n1.Cluster, "ho2").String()
	})
}
