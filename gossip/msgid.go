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
	// MsgBadInput: messages or push/pull states from the network were
	// dropped before they changed anything: undecodable, or carrying a
	// value no honest peer sends (an implausible Lamport time, an invalid
	// name). Logged at most once a second with counts.
	MsgBadInput = "0f3d47c39c224ab1863b07d3d89ca4e6"
)

// msgIDKey is the attribute key a journal handler maps to MESSAGE_ID=.
const msgIDKey = "MESSAGE_ID"
