package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Key handover. A node that was down while the cluster rotated its
// encryption key (install a new key, use it, remove the old one) comes
// back holding only keys that the others removed: memberlist can no longer
// talk with it, and it would form a cluster of its own. For a bounded grace
// period after a key was removed, every serfd node keeps it as retired.
// A node whose join failed sends each address it tried a handover request
// sealed (AES-GCM) with each of its keys; a peer holding one of them as
// retired answers with its current keyring, sealed with that same key, and
// the node takes that keyring over, writes its keyring file, and its next
// join attempt gets in. After the grace period a retired key is forgotten
// and opens nothing.
//
// Handover packets travel on the gossip UDP port outside memberlist's own
// encryption (the node cannot decrypt the cluster's packets, nor the
// cluster its): they start with handoverMagic, which no memberlist packet
// does (those start with a message type, an encryption version or a label
// header, all below 's'), and the transport hands them to the Cluster
// instead of memberlist. A stock Serf agent never sends one, and drops one
// it receives as undecryptable.
//
// What a holder of a retired key can do within the grace period is what
// the returning node does: obtain the current keyring. Rotating because a
// key leaked, set the grace period to zero (KeyHandoverGrace < 0; HCL
// key_handover_grace = "0s").

// handoverMagic starts every handover packet.
const handoverMagic = "serfd-key-handover\x00"

// Kinds of handover packets.
const (
	handoverRequest byte = 1
	handoverReply   byte = 2
)

const (
	// defaultKeyHandoverGrace is how long a removed key still lets its
	// holder take the keyring over.
	defaultKeyHandoverGrace = 24 * time.Hour
	// handoverSkew bounds how far the time in a handover packet may be
	// from ours: an old request or reply replayed later is ignored.
	handoverSkew = 2 * time.Minute
	// handoverAskedFor is how long after asking an address a reply from
	// it is taken.
	handoverAskedFor = time.Minute
	// maxHandoverPacket bounds what is decrypted: a keyring of a few
	// hundred keys.
	maxHandoverPacket = 16 * 1024
	// handoverWorkers bounds the handover packets handled at once; more
	// are dropped.
	handoverWorkers = 4
)

// handoverBody is the sealed part of a handover packet: who sent it and
// when, and, in a reply, the sender's keyring (base64, primary first).
type handoverBody struct {
	Node string   `json:"node"`
	At   int64    `json:"at"` // Unix nanoseconds
	Keys []string `json:"keys,omitempty"`
}

// handoverState is the Cluster's part of the handover: retired keys (by
// base64 key, when removed) and the addresses it asked, by when. Guarded
// by keyState.applyMu (retired) and mu (asked).
type handoverState struct {
	retired map[string]time.Time
	mu      sync.Mutex
	asked   map[string]time.Time
	workers chan struct{}
	tr      *transport // nil over a transport of the caller's (no handover)
}

// newHandoverState is an empty handoverState.
func newHandoverState() handoverState {
	return handoverState{retired: map[string]time.Time{}, asked: map[string]time.Time{},
		workers: make(chan struct{}, handoverWorkers)}
}

// seal encrypts body under key into a handover packet of kind.
func sealHandover(key []byte, kind byte, body handoverBody) ([]byte, error) {
	gcm, err := handoverAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	head := append([]byte(handoverMagic), kind)
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(slices.Clip(head), nonce...)
	return gcm.Seal(out, nonce, plain, head), nil
}

// openHandover decrypts a handover packet of kind under key.
func openHandover(key []byte, kind byte, pkt []byte) (handoverBody, error) {
	var body handoverBody
	gcm, err := handoverAEAD(key)
	if err != nil {
		return body, err
	}
	head := append([]byte(handoverMagic), kind)
	if len(pkt) > maxHandoverPacket || !bytes.HasPrefix(pkt, head) || len(pkt) < len(head)+gcm.NonceSize() {
		return body, errors.New("not a handover packet of that kind")
	}
	nonce := pkt[len(head) : len(head)+gcm.NonceSize()]
	plain, err := gcm.Open(nil, nonce, pkt[len(head)+gcm.NonceSize():], head)
	if err != nil {
		return body, err
	}
	if err := json.Unmarshal(plain, &body); err != nil {
		return body, err
	}
	return body, nil
}

func handoverAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// isHandover reports whether a packet is a handover packet.
func isHandover(buf []byte) bool { return bytes.HasPrefix(buf, []byte(handoverMagic)) }

// handoverOn reports whether this node keeps retired keys for handover.
func (c *Cluster) handoverOn() bool { return c.cfg.KeyHandoverGrace > 0 }

// retireKey records key (raw) as removed now. The caller holds applyMu.
func (c *Cluster) retireKey(key []byte) {
	if !c.handoverOn() {
		return
	}
	c.ho.retired[base64.StdEncoding.EncodeToString(key)] = time.Now()
	c.writeRetiredFile()
}

// unretireKey forgets key (raw) as retired: it was installed again. The
// caller holds applyMu.
func (c *Cluster) unretireKey(key []byte) {
	b64 := base64.StdEncoding.EncodeToString(key)
	if _, ok := c.ho.retired[b64]; ok {
		delete(c.ho.retired, b64)
		c.writeRetiredFile()
	}
}

// liveRetired is the retired keys still within the grace period, raw; the
// others are forgotten. The caller holds applyMu.
func (c *Cluster) liveRetired() [][]byte {
	var out [][]byte
	changed := false
	for b64, at := range c.ho.retired {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || time.Since(at) > c.cfg.KeyHandoverGrace {
			delete(c.ho.retired, b64)
			changed = true
			continue
		}
		out = append(out, key)
	}
	if changed {
		c.writeRetiredFile()
	}
	return out
}

// retiredPath is where the retired keys are kept beside the keyring file
// ("" without a keyring file: they are kept in memory only).
func (c *Cluster) retiredPath() string {
	if c.cfg.KeyringFile == "" {
		return ""
	}
	return c.cfg.KeyringFile + ".retired"
}

// retiredRecord is one line of the retired keys file's JSON array.
type retiredRecord struct {
	Key       string    `json:"key"`
	RemovedAt time.Time `json:"removed_at"`
}

// loadRetired reads the retired keys file, if any, at Create. A file that
// cannot be read is logged and ignored: handover is a convenience, not
// what membership stands on.
func (c *Cluster) loadRetired() {
	path := c.retiredPath()
	if path == "" || !c.handoverOn() {
		return
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var recs []retiredRecord
	if err == nil {
		err = json.Unmarshal(data, &recs)
	}
	if err != nil {
		c.log.Warn("retired keys file unreadable; no key handover for keys removed before this start", "FILE", path, "ERROR", err)
		return
	}
	for _, r := range recs {
		if time.Since(r.RemovedAt) <= c.cfg.KeyHandoverGrace {
			c.ho.retired[r.Key] = r.RemovedAt
		}
	}
}

// writeRetiredFile rewrites the retired keys file (mode 0600), if there is
// one. The caller holds applyMu.
func (c *Cluster) writeRetiredFile() {
	path := c.retiredPath()
	if path == "" {
		return
	}
	recs := []retiredRecord{}
	for k, at := range c.ho.retired {
		recs = append(recs, retiredRecord{Key: k, RemovedAt: at})
	}
	slices.SortFunc(recs, func(a, b retiredRecord) int { return a.RemovedAt.Compare(b.RemovedAt) })
	data, _ := json.MarshalIndent(recs, "", "  ") // plain data: cannot fail
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		c.log.Warn("cannot write the retired keys file", "FILE", path, "ERROR", err)
	}
}

// askForKeys sends a handover request sealed with each of this node's keys
// to each address (ip:port) it could not join, when it is alone: a peer
// holding one of the keys as retired answers with the keyring.
func (c *Cluster) askForKeys(addrs []string) {
	if c.ho.tr == nil || !c.EncryptionEnabled() || c.ml.NumMembers() > 1 {
		return
	}
	body := handoverBody{Node: c.cfg.NodeName, At: time.Now().UnixNano()}
	var sent []string
	for _, addr := range addrs {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			continue // a name memberlist would resolve: not asked
		}
		ok := false
		for _, key := range c.ks.keyring.GetKeys() {
			pkt, err := sealHandover(key, handoverRequest, body)
			if err == nil {
				_, err = c.ho.tr.WriteToAddress(pkt, memberlist.Address{Addr: addr})
			}
			ok = ok || err == nil
		}
		if ok {
			c.noteAsked(addr)
			sent = append(sent, addr)
		}
	}
	if len(sent) > 0 {
		c.log.Info("join failed; asking the peers for the current keyring in case the keys changed while this node was away",
			"JOIN_ADDRS", fmt.Sprint(sent))
	}
}

// noteAsked records that addr was asked now, and forgets the addresses
// asked longer ago than a reply is taken from.
func (c *Cluster) noteAsked(addr string) {
	c.ho.mu.Lock()
	defer c.ho.mu.Unlock()
	now := time.Now()
	for a, at := range c.ho.asked {
		if now.Sub(at) > handoverAskedFor {
			delete(c.ho.asked, a)
		}
	}
	c.ho.asked[addr] = now
}

// handoverPacket handles a handover packet the transport set aside, in a
// goroutine of the Cluster's own (at most handoverWorkers at once; more
// are dropped).
func (c *Cluster) handoverPacket(p *memberlist.Packet) {
	if len(p.Buf) <= len(handoverMagic) {
		return
	}
	select {
	case c.ho.workers <- struct{}{}:
	default:
		return
	}
	started := c.goOwned(func() {
		defer func() { <-c.ho.workers }()
		switch p.Buf[len(handoverMagic)] {
		case handoverRequest:
			c.answerHandover(p.Buf, p.From)
		case handoverReply:
			c.takeHandover(p.Buf, p.From)
		}
	})
	if !started {
		<-c.ho.workers
	}
}

// answerHandover answers a request sealed with a retired key still within
// the grace period with this node's keyring, sealed with the same key.
func (c *Cluster) answerHandover(pkt []byte, from net.Addr) {
	if !c.handoverOn() || !c.EncryptionEnabled() {
		return
	}
	c.ks.applyMu.Lock()
	retired := c.liveRetired()
	var keys []string
	for _, k := range c.ks.keyring.GetKeys() {
		keys = append(keys, base64.StdEncoding.EncodeToString(k))
	}
	primary := c.ks.keyring.GetPrimaryKey()
	c.ks.applyMu.Unlock()
	for _, key := range retired {
		req, err := openHandover(key, handoverRequest, pkt)
		if err != nil {
			continue
		}
		if skew := time.Since(time.Unix(0, req.At)); skew > handoverSkew || skew < -handoverSkew {
			c.log.Warn("ignored a key handover request with a time far from ours (replayed, or a clock off)",
				"NODE", req.Node, "ADDR", from.String(), "SKEW", skew.String())
			return
		}
		// Primary first, as keyring files list them.
		ring := []string{base64.StdEncoding.EncodeToString(primary)}
		for _, k := range keys {
			if k != ring[0] {
				ring = append(ring, k)
			}
		}
		reply, err := sealHandover(key, handoverReply, handoverBody{Node: c.cfg.NodeName, At: time.Now().UnixNano(), Keys: ring})
		if err == nil {
			_, err = c.ho.tr.WriteToAddress(reply, memberlist.Address{Addr: from.String()})
		}
		if err != nil {
			c.log.Warn("cannot answer a key handover request", "NODE", req.Node, "ADDR", from.String(), "ERROR", err)
			return
		}
		c.log.Warn("handed the keyring over to a node that holds a retired key (it was away while the keys changed)",
			"NODE", req.Node, "ADDR", from.String())
		return
	}
}

// takeHandover installs the keyring of a reply from an address this node
// asked lately, sealed with one of its keys, while it is still alone.
func (c *Cluster) takeHandover(pkt []byte, from net.Addr) {
	c.ho.mu.Lock()
	askedAt, asked := c.ho.asked[from.String()]
	c.ho.mu.Unlock()
	if !asked || time.Since(askedAt) > handoverAskedFor || !c.EncryptionEnabled() || c.ml.NumMembers() > 1 {
		return
	}
	c.ks.applyMu.Lock()
	defer c.ks.applyMu.Unlock()
	kr := c.ks.keyring
	for _, key := range kr.GetKeys() {
		rep, err := openHandover(key, handoverReply, pkt)
		if err != nil {
			continue
		}
		if skew := time.Since(time.Unix(0, rep.At)); skew > handoverSkew || skew < -handoverSkew || len(rep.Keys) == 0 {
			return
		}
		var ring [][]byte
		for _, k := range rep.Keys {
			raw, err := base64.StdEncoding.DecodeString(k)
			if err != nil || memberlist.ValidateKey(raw) != nil {
				c.log.Warn("ignored a key handover reply with an invalid key", "NODE", rep.Node, "ADDR", from.String())
				return
			}
			ring = append(ring, raw)
		}
		if bytes.Equal(kr.GetPrimaryKey(), ring[0]) {
			return // taken over already, from another peer's reply
		}
		old := kr.GetKeys()
		for _, k := range ring {
			if err := kr.AddKey(k); err != nil {
				c.log.Warn("cannot take the handed-over keyring", "NODE", rep.Node, "ERROR", err)
				return
			}
		}
		if err := kr.UseKey(ring[0]); err != nil {
			c.log.Warn("cannot take the handed-over keyring", "NODE", rep.Node, "ERROR", err)
			return
		}
		for _, k := range old {
			if !slices.ContainsFunc(ring, func(r []byte) bool { return bytes.Equal(r, k) }) {
				_ = kr.RemoveKey(k) // not the primary: cannot fail
				c.retireKey(k)
			}
		}
		if err := c.writeKeyringFile(); err != nil {
			c.log.Warn("took the handed-over keyring but cannot write the keyring file", "ERROR", err)
		}
		c.log.Warn("took over the cluster's keyring from a peer: the keys changed while this node was away",
			"NODE", rep.Node, "ADDR", from.String(), "KEYS", len(ring))
		return
	}
}
