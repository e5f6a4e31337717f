package daemon

import "github.com/serfd/serfd/gossip"

// Journal message IDs of the daemon's records, passed as the attribute
// msgIDKey. Each names one kind of record for `journalctl MESSAGE_ID=...`
// and for its explanation in packaging/catalog/serfd.catalog (shown by
// `journalctl -x`); the handler pool's are exec.Msg*. An ID never changes
// meaning; a new kind of record gets a new one (systemd-id128 new).
const (
	msgIDStarted          = "c0ab5f42e6ef47329e93c373c8895d4d"
	msgIDStopped          = "ec6bcfd8816c4ffb9aa024ee0bc28849"
	msgIDReloaded         = "6ebc03911e704532ac3325aadd0233f0"
	msgIDReloadFailed     = "a2cdc880bdc941e0a184b87e6d81674b"
	msgIDWatchdogWithheld = "ce0d86e17fb14154af01d7566331d435"
	msgIDLogDropped       = "01f216e0e19749828b85d6d825b87d87"

	msgIDMemberJoin   = "f07167f6bf8949aa94825fcab5d30290"
	msgIDMemberLeave  = "2d2bc5c46f34452b8f89f336fb6c7e6a"
	msgIDMemberFailed = "b20536984e3b41959ec5aa2d4d60f9b7"
	msgIDMemberUpdate = "43b4c5f262904f25beda0f37cf846ad7"
	msgIDMemberReap   = "ee6b7197c3474bf0a20bde87c29b6f34"
	msgIDUserEvent    = "9664abbc98b94854ba5a728f4ccb9983"
	msgIDQuery        = "e51bb0a2bd664fd29ce378d51e84a2b7"
)

// msgIDKey is the attribute key the journal handler sends as MESSAGE_ID=;
// the text and monitor outputs leave it out.
const msgIDKey = "MESSAGE_ID"

// eventMsgID is the message ID of the record logged for an event of type t.
func eventMsgID(t gossip.EventType) string {
	switch t {
	case gossip.EventMemberJoin:
		return msgIDMemberJoin
	case gossip.EventMemberLeave:
		return msgIDMemberLeave
	case gossip.EventMemberFailed:
		return msgIDMemberFailed
	case gossip.EventMemberUpdate:
		return msgIDMemberUpdate
	case gossip.EventMemberReap:
		return msgIDMemberReap
	case gossip.EventUser:
		return msgIDUserEvent
	case gossip.EventQuery:
		return msgIDQuery
	}
	return ""
}
