package gossip

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/memberlist"
)

// Key management: the four internal key queries change
// memberlist's keyring on every node.

// minEncodedKeyLength bounds how many keys a list-keys answer carries:
// QueryResponseSizeLimit / 25 (a base64 AES-128 key and its framing).
const minEncodedKeyLength = 25

// keyRequest is the body of a key query payload ([msgKeyRequest] + body).
type keyRequest struct {
	Key []byte
}

// keyResponse is the body of a key query answer ([msgKeyResponse] + body).
// Keys and PrimaryKey (base64) are filled only by list-keys.
type keyResponse struct {
	Result     bool
	Message    string
	Keys       []string
	PrimaryKey string
}

// KeyResponse sums up the answers to a cluster-wide key operation.
type KeyResponse struct {
	Messages    map[string]string // node -> error (or warning) message
	NumNodes    int               // live members when the query was sent
	NumResp     int               // answers received
	NumErr      int               // answers reporting failure
	Keys        map[string]int    // base64 key -> nodes holding it (list-keys)
	PrimaryKeys map[string]int    // base64 key -> nodes using it as primary (list-keys)
}

// keyState holds the keyring and serialises key operations.
type keyState struct {
	keyring *memberlist.Keyring // nil without encryption
	opMu    sync.Mutex          // one cluster-wide key operation at a time
	applyMu sync.Mutex          // one local keyring change (and file write) at a time
}

// checkKeyConfig applies the query and key defaults to cfg and returns its
// problems; checkConfig reports them with every other problem.
func checkKeyConfig(cfg *Config) []string {
	var problems []string
	for _, l := range []struct {
		what string
		v    *int
	}{{"query size limit", &cfg.QuerySizeLimit}, {"query response size limit", &cfg.QueryResponseSizeLimit}} {
		switch {
		case *l.v == 0:
			*l.v = defaultQuerySizeLimit
		case *l.v < 0:
			problems = append(problems, fmt.Sprintf("%s %d is negative", l.what, *l.v))
		}
	}
	if cfg.KeyHandoverGrace == 0 {
		cfg.KeyHandoverGrace = defaultKeyHandoverGrace
	}
	switch s := cfg.QueryResponseStreamSizeLimit; {
	case s == 0:
		cfg.QueryResponseStreamSizeLimit = max(defaultQueryResponseStreamSizeLimit, cfg.QueryResponseSizeLimit)
	case s < cfg.QueryResponseSizeLimit || s > MaxQueryResponseStreamSizeLimit:
		problems = append(problems, fmt.Sprintf("query response stream size limit %d out of range %d-%d (from the query response size limit to the largest stream limit)",
			s, max(cfg.QueryResponseSizeLimit, 0), MaxQueryResponseStreamSizeLimit))
	}
	for i, k := range cfg.EncryptKeys {
		if err := memberlist.ValidateKey(k); err != nil {
			problems = append(problems, fmt.Sprintf("encrypt key %d is %d bytes; want 16, 24 or 32", i+1, len(k)))
		}
	}
	return problems
}

// configureQueries sets the memberlist options this file and query.go need:
// the conflict delegate, the keyring (primary key first) and the gossip
// interval behind the default query timeout.
func (c *Cluster) configureQueries(mc *memberlist.Config, d delegate) error {
	mc.Conflict = d
	c.qs.gossipInterval = mc.GossipInterval
	if len(c.cfg.EncryptKeys) > 0 {
		keys := make([][]byte, len(c.cfg.EncryptKeys))
		for i, k := range c.cfg.EncryptKeys {
			keys[i] = append([]byte(nil), k...)
		}
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return fmt.Errorf("build keyring: %w", err)
		}
		mc.Keyring = kr
		c.ks.keyring = kr
	}
	return nil
}

// EncryptionEnabled reports whether gossip is encrypted (the keyring has keys).
func (c *Cluster) EncryptionEnabled() bool {
	return c.ks.keyring != nil && len(c.ks.keyring.GetKeys()) > 0
}

// InstallKey adds a key (base64) to every node's keyring.
//
// Like the other key operations it waits until every live member answered
// or the default query timeout passed. It returns the summary with an error
// "N/M nodes reported failure" if any node failed, or "N/M nodes reported
// success" if some did not answer. Key operations run one at a time.
func (c *Cluster) InstallKey(key string) (*KeyResponse, error) {
	return c.keyOp("install key", installKeyQuery, key)
}

// UseKey makes an installed key (base64) the primary key on every node.
func (c *Cluster) UseKey(key string) (*KeyResponse, error) {
	return c.keyOp("use key", useKeyQuery, key)
}

// RemoveKey removes a key (base64) from every node's keyring. Removing the
// primary key fails.
func (c *Cluster) RemoveKey(key string) (*KeyResponse, error) {
	return c.keyOp("remove key", removeKeyQuery, key)
}

// ListKeys asks every node for its keys.
func (c *Cluster) ListKeys() (*KeyResponse, error) {
	return c.keyOp("list keys", listKeysQuery, "")
}

// keyOp runs one key query across the cluster and sums up the answers.
func (c *Cluster) keyOp(op, query, key string) (*KeyResponse, error) {
	c.ks.opMu.Lock()
	defer c.ks.opMu.Unlock()
	resp := &KeyResponse{
		Messages:    map[string]string{},
		Keys:        map[string]int{},
		PrimaryKeys: map[string]int{},
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return resp, fmt.Errorf("%s: decode base64 key: %w", op, err)
	}
	if query == installKeyQuery {
		if err := memberlist.ValidateKey(raw); err != nil {
			return resp, fmt.Errorf("%s: key is %d bytes; want 16, 24 or 32", op, len(raw))
		}
	}
	payload, err := c.wire.encode(msgKeyRequest, &keyRequest{Key: raw})
	if err != nil {
		return resp, fmt.Errorf("%s: %w", op, err)
	}
	qr, err := c.query(query, payload, nil)
	if err != nil {
		return resp, fmt.Errorf("%s: %w", op, err)
	}
	defer qr.Close()
	resp.NumNodes = c.ml.NumMembers()
	for r := range qr.ResponseCh() {
		resp.NumResp++
		kr, err := c.wire.decodeKeyResponse(r.Payload)
		switch {
		case err != nil:
			resp.NumErr++
			resp.Messages[r.From] = err.Error()
		case !kr.Result:
			resp.NumErr++
			resp.Messages[r.From] = kr.Message
		case kr.Message != "":
			resp.Messages[r.From] = kr.Message
		}
		if err == nil {
			for _, k := range kr.Keys {
				resp.Keys[k]++
			}
			if kr.PrimaryKey != "" {
				resp.PrimaryKeys[kr.PrimaryKey]++
			}
		}
		if resp.NumResp >= resp.NumNodes {
			break
		}
	}
	if resp.NumErr > 0 {
		return resp, &KeyOpError{Op: op, Result: fmt.Sprintf("%d/%d nodes reported failure", resp.NumErr, resp.NumNodes)}
	}
	if resp.NumResp < resp.NumNodes {
		return resp, &KeyOpError{Op: op, Result: fmt.Sprintf("%d/%d nodes reported success", resp.NumResp, resp.NumNodes)}
	}
	return resp, nil
}

// decodeKeyRequest decodes a key query payload.
func (w *wireCodec) decodeKeyRequest(payload []byte) (keyRequest, error) {
	var req keyRequest
	if len(payload) == 0 || msgType(payload[0]) != msgKeyRequest {
		return req, fmt.Errorf("decode key request: not a key request (%d bytes)", len(payload))
	}
	if err := w.decodeBody(msgKeyRequest, payload[1:], &req); err != nil {
		return keyRequest{}, err
	}
	return req, nil
}

// decodeKeyResponse decodes a key query answer.
func (w *wireCodec) decodeKeyResponse(payload []byte) (keyResponse, error) {
	var resp keyResponse
	if len(payload) == 0 || msgType(payload[0]) != msgKeyResponse {
		return resp, fmt.Errorf("decode key response: not a key response (%d bytes)", len(payload))
	}
	if err := w.decodeBody(msgKeyResponse, payload[1:], &resp); err != nil {
		return keyResponse{}, err
	}
	return resp, nil
}

// answerKeyQuery applies a key query to the local keyring, rewrites the
// keyring file after a change, and answers with the outcome.
func (c *Cluster) answerKeyQuery(q *Query, payload []byte) {
	c.ks.applyMu.Lock()
	defer c.ks.applyMu.Unlock()
	var resp keyResponse
	req, err := c.wire.decodeKeyRequest(payload)
	switch {
	case err != nil:
		resp.Message = err.Error()
	case q.name == listKeysQuery:
		if !c.EncryptionEnabled() {
			resp.Message = "Keyring is empty (encryption not enabled)"
			break
		}
		for _, k := range c.ks.keyring.GetKeys() {
			resp.Keys = append(resp.Keys, base64.StdEncoding.EncodeToString(k))
		}
		resp.PrimaryKey = base64.StdEncoding.EncodeToString(c.ks.keyring.GetPrimaryKey())
		resp.Result = true
	case !c.EncryptionEnabled():
		resp.Message = "No keyring to modify (encryption not enabled)"
	default:
		kr := c.ks.keyring
		switch q.name {
		case installKeyQuery:
			if err = kr.AddKey(req.Key); err == nil {
				c.unretireKey(req.Key)
			}
		case useKeyQuery:
			err = kr.UseKey(req.Key)
		case removeKeyQuery:
			if err = kr.RemoveKey(req.Key); err == nil {
				c.retireKey(req.Key)
			}
		}
		if err == nil {
			err = c.writeKeyringFile()
		}
		if err != nil {
			resp.Message = err.Error()
		} else {
			resp.Result = true
			c.log.Info("keyring changed", "SERF_QUERY_NAME", q.name, "SOURCE", q.source)
		}
	}
	if !resp.Result {
		c.log.Warn("key query failed", "SERF_QUERY_NAME", q.name, "SOURCE", q.source, "ERROR", resp.Message)
	}
	buf, err := c.keyAnswer(q, &resp)
	if err == nil {
		err = q.Respond(buf)
	}
	if err != nil {
		c.log.Warn("cannot answer key query", "SERF_QUERY_NAME", q.name, "SOURCE", q.source, "ERROR", err)
	}
}

// keyAnswer encodes a key query answer. A key list is cut to
// QueryResponseSizeLimit/25 keys, then further until the whole query
// response fits the limit; the answer then says so in Message.
func (c *Cluster) keyAnswer(q *Query, resp *keyResponse) ([]byte, error) {
	total := len(resp.Keys)
	truncate := func(n int) {
		resp.Keys = resp.Keys[:n]
		resp.Message = fmt.Sprintf("truncated key list response, showing first %d of %d keys", n, total)
	}
	if maxKeys := c.cfg.QueryResponseSizeLimit / minEncodedKeyLength; len(resp.Keys) > maxKeys {
		truncate(maxKeys)
	}
	for {
		buf, err := c.wire.encode(msgKeyResponse, resp)
		if err != nil {
			return nil, err
		}
		full, err := q.encodeResponse(buf)
		if err != nil {
			return nil, err
		}
		if len(full) <= c.cfg.QueryResponseSizeLimit || len(resp.Keys) == 0 {
			if len(resp.Keys) < total {
				c.log.Warn(resp.Message, "SERF_QUERY_NAME", q.name)
			}
			return buf, nil
		}
		truncate(len(resp.Keys) - 1)
	}
}

// writeKeyringFile rewrites Config.KeyringFile, if set, with the current
// keys, primary first, as a JSON array of base64 strings, mode 0600. It
// writes a temporary file and renames it, so readers never see half a file.
// The caller holds applyMu.
func (c *Cluster) writeKeyringFile() error {
	path := c.cfg.KeyringFile
	if path == "" || c.ks.keyring == nil {
		return nil
	}
	var keys []string
	for _, k := range c.ks.keyring.GetKeys() {
		keys = append(keys, base64.StdEncoding.EncodeToString(k))
	}
	data, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return fmt.Errorf("write keyring file %s: %w", path, err)
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("write keyring file %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes data to path, mode 0600, through a temporary file
// in the same directory that is synced and renamed over it, so readers
// never see half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// KeyOpError is a key operation that not every node confirmed. Result is
// Serf's wording ("N/M nodes reported failure"), which Serf's RPC clients
// print as it is.
type KeyOpError struct {
	Op, Result string
}

func (e *KeyOpError) Error() string { return e.Op + ": " + e.Result }
