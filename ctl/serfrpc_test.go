package ctl

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/serfd/serfd/internal/testutil"
)

// fakeAgent is a Serf RPC server on a real loopback socket that answers
// as serve says, with Serf's codec, one connection at a time.
func fakeAgent(t *testing.T, serve func(h RPCRequestHeader, dec *codec.Decoder, send func(hdr RPCResponseHeader, body any)) bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			br, bw := bufio.NewReader(c), bufio.NewWriter(c)
			dec, enc := codec.NewDecoder(br, NewRPCHandle()), codec.NewEncoder(bw, NewRPCHandle())
			send := func(hdr RPCResponseHeader, body any) {
				_ = enc.Encode(&hdr)
				if body != nil {
					_ = enc.Encode(body)
				}
				_ = bw.Flush()
			}
			for {
				var h RPCRequestHeader
				if dec.Decode(&h) != nil || !serve(h, dec, send) {
					break
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		testutil.Recv(t, done, 10*time.Second, "the fake agent to stop")
	})
	return l.Addr().String()
}

// TestRPCClientQueryEndsAtEmptyRecord: a Serf agent whose query ended
// sends acks and responses from "" until its own timer says done; the
// query is over at the first, and the next request works on a new
// connection.
func TestRPCClientQueryEndsAtEmptyRecord(t *testing.T) {
	var conns atomic.Int32
	addr := fakeAgent(t, func(h RPCRequestHeader, dec *codec.Decoder, send func(RPCResponseHeader, any)) bool {
		switch h.Command {
		case RPCHandshake:
			var req RPCHandshakeRequest
			_ = dec.Decode(&req)
			conns.Add(1)
			send(RPCResponseHeader{Seq: h.Seq}, nil)
		case RPCQuery:
			var req RPCQueryRequest
			_ = dec.Decode(&req)
			send(RPCResponseHeader{Seq: h.Seq}, nil)
			send(RPCResponseHeader{Seq: h.Seq}, &RPCQueryRecord{Type: QueryAck, From: "n1"})
			send(RPCResponseHeader{Seq: h.Seq}, &RPCQueryRecord{Type: QueryResponse, From: "n1", Payload: []byte("pong")})
			for range 50 {
				send(RPCResponseHeader{Seq: h.Seq}, &RPCQueryRecord{Type: QueryAck})
				send(RPCResponseHeader{Seq: h.Seq}, &RPCQueryRecord{Type: QueryResponse})
			}
			send(RPCResponseHeader{Seq: h.Seq}, &RPCQueryRecord{Type: QueryDone})
		case RPCMembers:
			send(RPCResponseHeader{Seq: h.Seq}, &RPCMembersResponse{Members: []RPCMember{{Name: "n1", Status: "alive"}}})
		default:
			return false
		}
		return true
	})
	c := NewRPCClient(addr, "")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	err := c.Query(ctx, RPCQueryRequest{Name: "ping"}, func(rec RPCQueryRecord) error {
		got = append(got, rec.Type+":"+rec.From+":"+string(rec.Payload))
		return nil
	})
	if want := []string{"started::", "ack:n1:", "response:n1:pong", "done::"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Query = %q, %v; want %q", got, err, want)
	}
	ms, err := c.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "n1" || conns.Load() != 2 {
		t.Errorf("Members after the query = %+v, %v on connection %d; want n1 on a second connection", ms, err, conns.Load())
	}
}

// An answer that comes with no body (auth required, unsupported command)
// is an *RPCError at once, not a wait for a body.
func TestRPCClientErrorsWithoutBody(t *testing.T) {
	addr := fakeAgent(t, func(h RPCRequestHeader, dec *codec.Decoder, send func(RPCResponseHeader, any)) bool {
		if h.Command == RPCHandshake {
			var req RPCHandshakeRequest
			_ = dec.Decode(&req)
			send(RPCResponseHeader{Seq: h.Seq}, nil)
			return true
		}
		if h.Command == RPCStats {
			send(RPCResponseHeader{Seq: h.Seq, Error: RPCErrAuthRequired}, nil)
			return true
		}
		var body any
		_ = dec.Decode(&body)
		send(RPCResponseHeader{Seq: h.Seq, Error: RPCErrUnsupportedCommand}, nil)
		return true
	})
	c := NewRPCClient(addr, "")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var re *RPCError
	if _, err := c.Stats(ctx); !errors.As(err, &re) || re.Message != RPCErrAuthRequired {
		t.Errorf("Stats = %v; want %q", err, RPCErrAuthRequired)
	}
	if _, _, err := c.Coordinate(ctx, "n1"); !errors.As(err, &re) || re.Message != RPCErrUnsupportedCommand {
		t.Errorf("Coordinate = %v; want %q", err, RPCErrUnsupportedCommand)
	}
	if ctx.Err() != nil {
		t.Errorf("the errors waited for the deadline")
	}
}
