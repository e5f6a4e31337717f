package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/gossip"
)

func (d *daemon) query(w http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.QueryRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	noteRequest(r, req.Name)
	if req.Name == "" {
		return nil, badRequest("query: the name is empty")
	}
	// Internal queries are the cluster's own; only a bare ping may be sent
	// by hand (serfctl reachability).
	if strings.HasPrefix(req.Name, "_serf_") && (req.Name != "_serf_ping" || len(req.Payload) > 0) {
		return nil, badRequest("query %q: names starting with _serf_ are reserved for serfd itself", req.Name)
	}
	params := &gossip.QueryParams{
		FilterNodes: req.FilterNodes,
		FilterTags:  req.FilterTags,
		RequestAck:  !req.NoAck,
		RelayFactor: req.RelayFactor,
	}
	if req.Timeout != "" {
		t, err := time.ParseDuration(req.Timeout)
		if err != nil || t <= 0 || t > time.Hour {
			return nil, badRequest("query: timeout %q is not a duration in (0, 1h]", req.Timeout)
		}
		params.Timeout = t
	}
	names, err := d.cluster.Answerers(&gossip.QueryParams{FilterNodes: req.FilterNodes, FilterTags: req.FilterTags})
	if err != nil {
		return nil, gossipError(err, http.StatusInternalServerError)
	}
	expected := make(map[string]bool, len(names))
	for _, n := range names {
		expected[n] = true
	}
	resp, err := d.cluster.Query(req.Name, req.Payload, params)
	if err != nil {
		return nil, gossipError(err, http.StatusInternalServerError)
	}
	defer resp.Close()
	d.log.Info("query "+req.Name+" sent", "SERF_QUERY_NAME", req.Name, "PAYLOAD_BYTES", len(req.Payload),
		"DEADLINE", resp.Deadline().Format(time.RFC3339Nano), "EXPECTED", len(expected))

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(resp.Deadline().Add(30 * time.Second))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(rec ctl.QueryRecord) bool {
		if enc.Encode(rec) != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(ctl.QueryRecord{Type: ctl.QueryStarted, Deadline: resp.Deadline(), Expected: len(expected)}) {
		return nil, nil
	}
	// The stream ends early once every expected node has acked (when acks
	// were asked for) and responded; the ping of reachability has acks only.
	w8 := answerWait{expected: expected, acked: map[string]bool{}, responded: map[string]bool{},
		needAcks: !req.NoAck, needResponses: req.Name != "_serf_ping"}
	ackCh, respCh := resp.AckCh(), resp.ResponseCh()
	for (ackCh != nil || respCh != nil) && !w8.complete() {
		select {
		case from, ok := <-ackCh:
			if !ok {
				ackCh = nil
				continue
			}
			w8.acked[from] = true
			if !send(ctl.QueryRecord{Type: ctl.QueryAck, From: from}) {
				return nil, nil
			}
		case nr, ok := <-respCh:
			if !ok {
				respCh = nil
				continue
			}
			w8.responded[nr.From] = true
			if !send(ctl.QueryRecord{Type: ctl.QueryResponse, From: nr.From, Payload: nr.Payload}) {
				return nil, nil
			}
		case <-r.Context().Done():
			return nil, nil // the client went away; Close frees the query
		}
	}
	send(ctl.QueryRecord{Type: ctl.QueryDone, Acks: len(w8.acked), Responses: len(w8.responded)})
	return nil, nil
}

// answerWait tracks which of the expected nodes answered a query.
type answerWait struct {
	expected                map[string]bool
	acked, responded        map[string]bool
	needAcks, needResponses bool
}

// complete reports whether every expected node has given every answer
// waited for. With nobody expected (filters match no alive member) the
// query runs to its deadline: members may be unknown yet.
func (a *answerWait) complete() bool {
	if len(a.expected) == 0 || (!a.needAcks && !a.needResponses) {
		return false
	}
	for n := range a.expected {
		if (a.needAcks && !a.acked[n]) || (a.needResponses && !a.responded[n]) {
			return false
		}
	}
	return true
}

func (d *daemon) tags(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.TagsRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	noteRequest(r, tagsSubject(req.Set, req.Delete))
	tags, err := d.changeTags(req.Set, req.Delete)
	if err != nil {
		return nil, err
	}
	return ctl.TagsResponse{Tags: tags}, nil
}

// changeTags deletes then sets this node's tags, for the control API and
// Serf's RPC alike, and returns them.
func (d *daemon) changeTags(set map[string]string, del []string) (map[string]string, error) {
	if len(set) == 0 && len(del) == 0 {
		return nil, badRequest("tags: nothing to set or delete")
	}
	tags := maps.Clone(d.cluster.LocalMember().Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	for _, k := range del {
		delete(tags, k)
	}
	for k, v := range set {
		if k == "" {
			return nil, badRequest("tags: a tag name is empty")
		}
		tags[k] = v
	}
	if err := d.cluster.SetTags(tags); err != nil {
		return nil, gossipError(err, http.StatusInternalServerError)
	}
	d.mu.Lock()
	cfgTags := d.current.Tags
	d.mu.Unlock()
	d.persistTags(tags, cfgTags)
	d.log.Info("tags updated: "+tagList(tags), "TAGS", fmt.Sprint(tags))
	return tags, nil
}

func (d *daemon) forceLeave(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.ForceLeaveRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Prune {
		noteRequest(r, "-prune "+req.Node)
	}
	noteRequest(r, req.Node)
	if req.Node == "" {
		return nil, badRequest("force-leave: the node name is empty")
	}
	if err := d.cluster.RemoveFailedNode(req.Node, req.Prune); err != nil {
		return nil, gossipError(err, http.StatusInternalServerError)
	}
	return ctl.ForceLeaveResponse{Node: req.Node}, nil
}

func (d *daemon) keys(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.KeysRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	noteRequest(r, req.Op) // never the key
	return d.keyOp(req.Op, req.Key)
}

// keyOp runs one key operation (ctl.KeyInstall, ...) on the cluster, for
// the control API and Serf's RPC alike.
func (d *daemon) keyOp(op string, key string) (ctl.KeysResponse, error) {
	req := ctl.KeysRequest{Op: op, Key: key}
	var run func(string) (*gossip.KeyResponse, error)
	switch req.Op {
	case ctl.KeyInstall:
		run = d.cluster.InstallKey
	case ctl.KeyUse:
		run = d.cluster.UseKey
	case ctl.KeyRemove:
		run = d.cluster.RemoveKey
	case ctl.KeyList:
		run = func(string) (*gossip.KeyResponse, error) { return d.cluster.ListKeys() }
	default:
		return ctl.KeysResponse{}, badRequest("keys: op %q is not install, use, remove or list", req.Op)
	}
	if req.Op != ctl.KeyList {
		if _, err := decodeKey(req.Key); err != nil {
			return ctl.KeysResponse{}, badRequest("%v", err)
		}
	}
	if !d.cluster.EncryptionEnabled() {
		return ctl.KeysResponse{}, &apiError{status: http.StatusConflict,
			err: errors.New("keys: encryption is not enabled on this node (set encrypt_key or keyring_file and restart)")}
	}
	kr, err := run(req.Key)
	if kr == nil {
		if err == nil {
			err = errors.New("no answer")
		}
		return ctl.KeysResponse{}, fmt.Errorf("keys %s: %w", req.Op, err)
	}
	out := ctl.KeysResponse{NumNodes: kr.NumNodes, NumResp: kr.NumResp, NumErr: kr.NumErr,
		Messages: kr.Messages, Keys: kr.Keys, PrimaryKeys: kr.PrimaryKeys}
	if ke := (*gossip.KeyOpError)(nil); errors.As(err, &ke) {
		out.Error = ke.Result // Serf's words, as Serf's RPC clients print them
	} else if err != nil {
		out.Error = err.Error()
	}
	d.log.Info("key operation "+req.Op, "KEY_OP", req.Op, "NODES", kr.NumNodes, "RESPONSES", kr.NumResp, "ERRORS", kr.NumErr)
	return out, nil
}

func (d *daemon) rtt(_ http.ResponseWriter, r *http.Request) (any, error) {
	a, b := r.URL.Query().Get("a"), r.URL.Query().Get("b")
	if a == "" {
		return nil, badRequest("give node a (and optionally b)")
	}
	if b == "" {
		b = d.cfg.NodeName
	}
	known := map[string]bool{}
	for _, m := range d.cluster.Members() {
		known[m.Name] = true
	}
	coord := func(node string) (*gossip.Coordinate, error) {
		if !known[node] {
			return nil, &apiError{status: http.StatusNotFound, err: fmt.Errorf("no member named %q", node)}
		}
		c, ok := d.cluster.Coordinate(node)
		if !ok {
			return nil, &apiError{status: http.StatusNotFound, err: fmt.Errorf("no network coordinate for node %q yet", node)}
		}
		return c, nil
	}
	ca, err := coord(a)
	if err != nil {
		return nil, err
	}
	cb, err := coord(b)
	if err != nil {
		return nil, err
	}
	return ctl.RTTResponse{A: a, B: b, RTT: ca.DistanceTo(cb)}, nil
}
