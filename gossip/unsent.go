package gossip

import "sync"

// unsentEvents tracks the user-event broadcasts this node owes the cluster
// (its own events, and those it relays after learning them by push/pull)
// until memberlist has put each in a gossip packet once. A graceful leave
// waits for it to empty (drainEvents), so that a stop or restart right
// after "sent" does not take an event along. A broadcast leaves it when
// sent, or when memberlist is finished with it (retransmitted enough, or
// pruned), whichever comes first; so it never holds more than the queue.
type unsentEvents struct {
	mu sync.Mutex
	m  map[*byte]struct{} // the first byte of each message not yet sent
}

// queue makes the broadcast of msg (not empty) tracked until sent.
func (u *unsentEvents) queue(msg []byte) *broadcast {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[*byte]struct{}{}
	}
	u.m[&msg[0]] = struct{}{}
	return &broadcast{msg: msg, unsent: u}
}

// sent notes the messages memberlist took for one gossip packet.
func (u *unsentEvents) sent(msgs [][]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.m) == 0 {
		return
	}
	for _, msg := range msgs {
		if len(msg) > 0 {
			delete(u.m, &msg[0])
		}
	}
}

func (u *unsentEvents) forget(msg []byte) { u.sent([][]byte{msg}) }

// count is how many tracked broadcasts have not been sent yet.
func (u *unsentEvents) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}
