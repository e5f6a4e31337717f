package exec

import (
	"log/slog"
	"testing"
)

// DefaultOptions is exactly what New uses for options left zero: a pool
// from zero options and one from DefaultOptions are configured alike.
func TestDefaultOptionsAreWhatNewApplies(t *testing.T) {
	zero, err := New(Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	o := DefaultOptions()
	o.Dir, o.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
	full, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	type knobs struct {
		path                                       string
		workers, queue, outputLimit, responseLimit int
		timeout, killGrace, drain                  int64
	}
	of := func(p *Pool) knobs {
		return knobs{p.path, p.workers, p.queueLimit, p.outputLimit, p.responseLimit, int64(p.timeout), int64(p.killGrace), int64(p.drainTimeout)}
	}
	if of(zero) != of(full) {
		t.Errorf("New(zero options) = %+v; New(DefaultOptions()) = %+v", of(zero), of(full))
	}
}
