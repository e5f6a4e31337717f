package gossip

// Journal message IDs of gossip's records, passed as the attribute
// MESSAGE_ID (msgIDKey). Each names one kind of record for
// `journalctl MESSAGE_ID=...` and for its explanation in serfd's journal
// catalog (packaging/catalog/serfd.catalog, shown by `journalctl -x`). An
// ID never changes meaning; a new kind of record gets a new one
// (systemd-id128 new).
const (
	// MsgEventsTooOld: user events arrived more than the dedup window
	// behind the event clock and were dropped; each may be one this node
	// never delivered.
	MsgEventsTooOld = "4120dc4c47d249f7a978317fbfccb330"
	// MsgEventQueueFull: events were dropped because the queue between
	// gossip and the handlers was full: this node never ran them.
	MsgEventQueueFull = "602b6be7d0eb4ceb9ff212fe058e84a3"
)

// msgIDKey is the attribute key a journal handler maps to MESSAGE_ID=.
const msgIDKey = "MESSAGE_ID"
