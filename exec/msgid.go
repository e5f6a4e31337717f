package exec

// Journal message IDs of the pool's records, passed as the attribute
// MESSAGE_ID. Each names one kind of record for `journalctl MESSAGE_ID=...`
// and for the explanation in serfd's journal catalog
// (packaging/catalog/serfd.catalog, shown by `journalctl -x`). An ID never
// changes meaning; a new kind of record gets a new one (systemd-id128 new).
const (
	// MsgHandlerFailed: a run did not succeed (non-zero exit, killed by a
	// signal, timed out, or failed to start). The run's record, e.g.
	// "handler NAME exited 3 after 12 ms (user event NAME)".
	MsgHandlerFailed = "4acdb9fe65ec4e3e84f6567f822ebe1c"
	// MsgHandlerTimedOut: a run reached its deadline; its process group
	// got SIGTERM (and SIGKILL after the kill grace).
	MsgHandlerTimedOut = "e5fe605352f5486ebeda5bfa13e77223"
	// MsgHandlerDropped: a run was not queued because the queue was full.
	MsgHandlerDropped = "8c35ecf5a9804af5b7a5601875b89340"
	// MsgQueryResponseNotSent: a query handler's stdout was not sent as
	// the response (over the response limit, or the send failed).
	MsgQueryResponseNotSent = "63325172d3094263924dfd07a8f9bdb8"
	// MsgHandlerRunsResumed: runs of user events that had not finished
	// when the daemon last stopped were found in the spool and queued
	// again.
	MsgHandlerRunsResumed = "81bb2247e27646d190bacbe04320bf77"
	// MsgHandlerRunRepeated: a spooled run that had started before a
	// crash or stop of the daemon, and had not finished, starts again
	// (SERF_RUN_ATTEMPT 2 or more); it may have done its work the first
	// time.
	MsgHandlerRunRepeated = "d87e2fbd38544b40a76f03f939a18dfb"
	// MsgHandlerSpoolProblem: the spool could not be written or read, or
	// held damaged records that were skipped; some runs may not survive a
	// restart, or may be lost.
	MsgHandlerSpoolProblem = "5e65b0e73b754be69731d360fd9aaf10"
)

// msgIDKey is the attribute key a journal handler maps to MESSAGE_ID=.
const msgIDKey = "MESSAGE_ID"
