package daemon

import (
	"strings"
	"time"

	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// onEvent is the event pump: it logs each event from gossip as one journal
// record and hands it to the handler pool. It runs on gossip's delivery
// goroutine and never waits on a script (Pool.Submit does not block).
func (d *daemon) onEvent(ev gossip.Event) {
	<-d.started
	if d.cluster == nil {
		return // Create failed
	}
	xe := exec.Event{Type: ev.Type.String(), LTime: ev.LTime, Payload: ev.Payload}
	self := d.cluster.LocalMember()
	xe.SelfName, xe.SelfTags = self.Name, self.Tags
	if self.Addr != nil {
		xe.SelfAddr = self.Addr.String()
	}

	attrs := []any{"SERF_EVENT", xe.Type}
	if id := eventMsgID(ev.Type); id != "" {
		attrs = append(attrs, msgIDKey, id)
	}
	switch ev.Type {
	case gossip.EventUser:
		xe.UserEvent = ev.Name
		attrs = append(attrs, "SERF_USER_EVENT", ev.Name, "SERF_LTIME", ev.LTime,
			"PAYLOAD_BYTES", len(ev.Payload), "COALESCE", ev.Coalesce)
		d.setLastEvent("user:" + ev.Name)
		d.log.Info("user event "+ev.Name, attrs...)
	case gossip.EventQuery:
		xe.QueryName = ev.Name
		if ev.Query != nil {
			xe.Respond = ev.Query.Respond
			xe.QuerySource = ev.Query.SourceNode()
			attrs = append(attrs, "SERF_QUERY_SOURCE", ev.Query.SourceNode())
		}
		attrs = append(attrs, "SERF_QUERY_NAME", ev.Name, "SERF_LTIME", ev.LTime)
		d.setLastEvent("query:" + ev.Name)
		msg := "query " + ev.Name
		if xe.QuerySource != "" {
			msg += " from " + xe.QuerySource
		}
		d.log.Info(msg, attrs...)
	default:
		names := make([]string, 0, len(ev.Members))
		addrs := make([]string, 0, len(ev.Members))
		for _, m := range ev.Members {
			xe.Members = append(xe.Members, exec.Member{Name: m.Name, Addr: m.Addr.String(), Tags: m.Tags})
			names = append(names, m.Name)
			addrs = append(addrs, m.HostPort())
		}
		attrs = append(attrs, "SERF_MEMBERS", strings.Join(names, ","), "SERF_MEMBER_ADDRS", strings.Join(addrs, ","))
		d.setLastEvent(xe.Type)
		d.log.Info(ev.Type.Describe(ev.Members), attrs...)
	}
	d.metrics.onEvent(ev)
	if lost := d.events.publish(ev, &xe); lost > 0 {
		total := d.streamLost.Add(uint64(lost))
		if now := time.Now().UnixNano(); now-d.streamLostLogged.Load() > int64(time.Second) {
			d.streamLostLogged.Store(now)
			d.log.Warn("Serf RPC event streams fell behind and lost events", "SERF_EVENT", xe.Type,
				"BUFFER", rpcStreamBuffer, "LOST_TOTAL", total)
		}
	}
	d.pool.Submit(xe)
}

func (d *daemon) setLastEvent(s string) {
	d.mu.Lock()
	d.lastEvent = s
	d.mu.Unlock()
	d.notifyStatus()
}
