package gossip

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// SetTags replaces this node's tags and gossips them:
// memberlist re-advertises the node with the new meta and peers deliver
// member-update. The encoded meta (0xFF and a msgpack map) must fit
// memberlist's 512-byte limit. The new tags apply locally at once; an error
// after that means only that the update was not yet sent to a peer within
// 5s (it still goes out with gossip). Calls are serialized.
func (c *Cluster) SetTags(tags map[string]string) error {
	meta, err := c.wire.encodeTags(tags)
	if err != nil {
		return errorf(ErrInvalid, "set tags: %w", err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return errorf(ErrTooLarge, "set tags: tags encode to %d bytes of node meta, over memberlist's limit of %d bytes",
			len(meta), memberlist.MetaMaxSize)
	}
	switch c.clusterState() {
	case stateLeaving, stateLeft:
		return fmt.Errorf("set tags: %w", ErrNotMember)
	case stateShutdown:
		return fmt.Errorf("set tags: %w", ErrShutdown)
	}
	c.tagsMu.Lock()
	defer c.tagsMu.Unlock()
	c.tagMeta.Store(&meta)
	if err := c.ml.UpdateNode(c.timing.broadcastTimeout); err != nil {
		return fmt.Errorf("set tags: applied locally, but gossiping them: %w", err)
	}
	return nil
}

// nodeMeta returns the encoded tags to advertise: the last SetTags, else
// those of the Config.
func (c *Cluster) nodeMeta() []byte {
	if m := c.tagMeta.Load(); m != nil {
		return *m
	}
	return c.meta
}
