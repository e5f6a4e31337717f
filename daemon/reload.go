package daemon

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/serfd/serfd/ctl"
)

// reloadResult is what a reload did, or why it did nothing.
type reloadResult struct {
	resp ctl.ReloadResponse
	err  error
}

// reload re-reads the configuration and applies what can change live: the
// log level, tags, handler settings, the join list and the admin group.
// Settings that need a restart are named, not applied. A configuration that
// does not load changes nothing. Runs on Run's goroutine only.
func (d *daemon) reload(j *joiner) (res reloadResult) {
	d.notify("RELOADING=1\n" + sd.SdNotifyMonotonicUsec())
	defer func() {
		note := "reloaded at " + time.Now().Format("15:04:05")
		var ce *ConfigError
		switch {
		case errors.As(res.err, &ce):
			note = fmt.Sprintf("reload at %s failed (%d problem(s)); running the old configuration", time.Now().Format("15:04:05"), len(ce.Problems))
		case res.err != nil:
			note = fmt.Sprintf("reload at %s failed: %v", time.Now().Format("15:04:05"), res.err)
		case len(res.resp.NeedsRestart) > 0:
			note += fmt.Sprintf(" (%d change(s) need a restart)", len(res.resp.NeedsRestart))
		}
		d.mu.Lock()
		d.lastReload = note
		d.mu.Unlock()
		if res.err != nil {
			// Logged here, whoever asked: `systemctl reload` goes through
			// the API, whose caller also gets the error.
			d.log.Error("reload failed; keeping the running configuration", msgIDKey, msgIDReloadFailed,
				"CONFIG", d.configPath, "ERROR", res.err)
		}
		d.notify("READY=1")
		d.notifyStatus()
	}()
	d.log.Info("reloading configuration", "CONFIG", d.configPath)
	cfg, err := LoadConfig(d.configPath)
	if err != nil {
		return reloadResult{err: err}
	}
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	d.mu.Lock()
	old := d.current
	d.mu.Unlock()

	var applied []string
	if cfg.LogLevel != old.LogLevel {
		d.level.Set(cfg.LogLevel)
		applied = append(applied, "log.level")
	}
	if !reflect.DeepEqual(cfg.HandlerSettings, old.HandlerSettings) {
		if err := d.pool.SetHandlers(cfg.HandlerSettings); err != nil {
			return reloadResult{err: fmt.Errorf("apply handler settings: %w", err)}
		}
		applied = append(applied, "handler blocks")
	}
	if tags, changed := mergeTags(d.cluster.LocalMember().Tags, old.Tags, cfg.Tags); changed {
		if err := d.cluster.SetTags(tags); err != nil {
			return reloadResult{err: fmt.Errorf("apply tags: %w", err)}
		}
		d.persistTags(tags, cfg.Tags)
		applied = append(applied, "tags")
	}
	if cfg.AdminGroup != old.AdminGroup || cfg.AdminGID != old.AdminGID {
		d.ctl.setAdmin(cfg.AdminGroup, cfg.AdminGID)
		applied = append(applied, "control.admin_group")
	}
	if !slices.Equal(cfg.Join, old.Join) || cfg.JoinResolver != old.JoinResolver {
		if len(cfg.Join) > 0 {
			j.start(cfg.Join)
		} else {
			j.stop()
		}
		applied = append(applied, "join")
	}
	restart := needsRestart(d.cfg, cfg)
	d.mu.Lock()
	d.current = cfg
	d.mu.Unlock()

	resp := ctl.ReloadResponse{ConfigFiles: cfg.Files, Applied: applied, NeedsRestart: restart}
	if resp.Applied == nil {
		resp.Applied = []string{}
	}
	attrs := []any{msgIDKey, msgIDReloaded, "APPLIED", strings.Join(applied, ","), "CONFIG_FILES", fmt.Sprint(cfg.Files)}
	if len(restart) > 0 {
		attrs = append(attrs, "NEEDS_RESTART", strings.Join(restart, ","))
		d.log.Warn("configuration reloaded; some changes need a restart of serfd", attrs...)
	} else {
		d.log.Info("configuration reloaded", attrs...)
	}
	return reloadResult{resp: resp}
}

// mergeTags applies a change of the configured tags to the live ones
// without wiping tags set at run time (Serf #392): a tag the configuration
// now sets differently is set, one it no longer sets is deleted unless it
// was changed at run time; every other live tag stays.
func mergeTags(live, oldCfg, newCfg map[string]string) (map[string]string, bool) {
	out := maps.Clone(live)
	if out == nil {
		out = map[string]string{}
	}
	changed := false
	for k, v := range oldCfg {
		if _, still := newCfg[k]; !still && out[k] == v {
			delete(out, k)
			changed = true
		}
	}
	for k, v := range newCfg {
		if ov, ok := oldCfg[k]; (!ok || ov != v) && out[k] != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}

// needsRestart names the settings that differ between the running
// configuration and cfg but cannot change live.
func needsRestart(running, cfg *Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("node_name", running.NodeName, cfg.NodeName)
	check("bind", [2]any{running.BindAddr, running.BindPort}, [2]any{cfg.BindAddr, cfg.BindPort})
	check("advertise", [2]any{running.AdvertiseAddr, running.AdvertisePort}, [2]any{cfg.AdvertiseAddr, cfg.AdvertisePort})
	check("profile", running.Profile, cfg.Profile)
	check("encryption (encrypt_key, keyring_file)", [2]any{running.EncryptKeys, running.KeyringFile}, [2]any{cfg.EncryptKeys, cfg.KeyringFile})
	check("snapshot_path", running.SnapshotPath, cfg.SnapshotPath)
	check("rejoin_after_leave", running.RejoinAfterLeave, cfg.RejoinAfterLeave)
	check("replay_on_join", running.ReplayOnJoin, cfg.ReplayOnJoin)
	check("disable_coordinates", running.DisableCoordinates, cfg.DisableCoordinates)
	check("reconnect_interval", running.ReconnectInterval, cfg.ReconnectInterval)
	check("key_handover_grace", running.KeyHandoverGrace, cfg.KeyHandoverGrace)
	check("reconnect_timeout", running.ReconnectTimeout, cfg.ReconnectTimeout)
	check("tombstone_timeout", running.TombstoneTimeout, cfg.TombstoneTimeout)
	check("snapshot_retention", running.SnapshotRetention, cfg.SnapshotRetention)
	check("coalesce_period", [2]any{running.CoalescePeriod, running.QuiescentPeriod}, [2]any{cfg.CoalescePeriod, cfg.QuiescentPeriod})
	check("user_coalesce_period", [2]any{running.UserCoalescePeriod, running.UserQuiescentPeriod}, [2]any{cfg.UserCoalescePeriod, cfg.UserQuiescentPeriod})
	check("user_event_size_limit", running.UserEventSizeLimit, cfg.UserEventSizeLimit)
	check("query_size_limit", running.QuerySizeLimit, cfg.QuerySizeLimit)
	check("query_response_size_limit", running.QueryResponseSizeLimit, cfg.QueryResponseSizeLimit)
	check("query_response_stream_size_limit", running.QueryResponseStreamSizeLimit, cfg.QueryResponseStreamSizeLimit)
	check("control.socket", running.ControlSocket, cfg.ControlSocket)
	check("handlers.dir", running.HandlersDir, cfg.HandlersDir)
	check("handlers.workers", running.HandlerWorkers, cfg.HandlerWorkers)
	check("handlers.queue", running.HandlerQueue, cfg.HandlerQueue)
	check("handlers.timeout", running.HandlerTimeout, cfg.HandlerTimeout)
	check("handlers.spool", running.HandlerSpool, cfg.HandlerSpool)
	check("tags_file", running.TagsFile, cfg.TagsFile)
	check("rpc", [2]any{running.RPCAddr, running.RPCAuth}, [2]any{cfg.RPCAddr, cfg.RPCAuth})
	check("metrics", [2]any{running.MetricsAddr, running.MetricsEventNames}, [2]any{cfg.MetricsAddr, cfg.MetricsEventNames})
	check("discover, mdns", [4]any{running.Discover, running.MDNSInterface, running.MDNSDisableIPv4, running.MDNSDisableIPv6},
		[4]any{cfg.Discover, cfg.MDNSInterface, cfg.MDNSDisableIPv4, cfg.MDNSDisableIPv6})
	return out
}
