package gossip

// DefaultPort is the gossip port of Serf agents, UDP and TCP.
const DefaultPort = 7946

// MaxMessageSizeLimit is the largest UserEventSizeLimit (Serf's hard cap):
// a user event must fit one gossip packet with room to spare.
const MaxMessageSizeLimit = maxUserEventSizeLimit

// MaxQueryResponseStreamSizeLimit is the largest
// QueryResponseStreamSizeLimit: well inside memberlist's own bound on a
// stream message (20 MB).
const MaxQueryResponseStreamSizeLimit = 16 << 20

// DefaultConfig is a Config with every default filled in: what Create uses
// for each field left zero, and the port Serf agents listen on. Callers
// start from it and set what they configure; Validate checks the result.
// Coalescing stays off (a library delivers at once; Serf's agent turns it
// on with 3s and 1s).
func DefaultConfig() Config {
	return Config{
		BindAddr:                     "0.0.0.0",
		BindPort:                     DefaultPort,
		Profile:                      "lan",
		UserEventSizeLimit:           defaultUserEventSizeLimit,
		QuerySizeLimit:               defaultQuerySizeLimit,
		QueryResponseSizeLimit:       defaultQuerySizeLimit,
		QueryResponseStreamSizeLimit: defaultQueryResponseStreamSizeLimit,
		Backlog:                      defaultBacklog,
		EventQueue:                   defaultEventQueue,
		ReconnectInterval:            defaultReconnectInterval,
		ReconnectTimeout:             defaultReconnectTimeout,
		TombstoneTimeout:             defaultTombstoneTimeout,
		KeyHandoverGrace:             defaultKeyHandoverGrace,
		SnapshotRetention:            defaultSnapshotRetention,
	}
}

// Validate reports every problem of c, as Create would, in one error;
// nil if Create would accept it. It creates and binds nothing.
func (c Config) Validate() error {
	_, err := checkConfig(&c)
	return err
}
