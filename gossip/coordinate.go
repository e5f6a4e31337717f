package gossip

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Coordinate is a network coordinate in Serf's Vivaldi space
// : a Euclidean position Vec plus a Height (the
// access-link latency) and an Adjustment, all in seconds, and the node's
// confidence in it (Error, 0 is perfect). Estimate the round trip time
// between two nodes with DistanceTo. A Coordinate returned by the Cluster is
// a copy; the caller may keep or change it.
type Coordinate struct {
	Vec                       []float64
	Error, Adjustment, Height float64
}

// Vivaldi tuning, as Serf's defaults, in seconds where a time is meant.
const (
	coordDimensions      = 8
	vivaldiErrorMax      = 1.5
	vivaldiCE            = 0.25
	vivaldiCC            = 0.25
	adjustmentWindowSize = 20
	heightMin            = 10e-6
	latencyFilterSize    = 3
	gravityRho           = 150.0
	maxCoordRTT          = 10 * time.Second // longer samples are rejected
	coordZeroThreshold   = 1e-6             // distances below this count as zero
)

// clone returns a deep copy of a.
func (a *Coordinate) clone() *Coordinate {
	b := *a
	b.Vec = slices.Clone(a.Vec)
	return &b
}

// DistanceTo estimates the round trip time between a and b: the Euclidean
// distance of the vectors plus both heights, plus both adjustments when that
// keeps the sum positive. It is symmetric, never negative, and saturates at
// the largest time.Duration. Vectors of different lengths are compared as if
// the shorter one were padded with zeros (the Cluster only hands out
// coordinates of its own dimension).
func (a *Coordinate) DistanceTo(b *Coordinate) time.Duration {
	d := a.rawDistanceTo(b)
	if adj := d + a.Adjustment + b.Adjustment; adj > 0 {
		d = adj
	}
	switch ns := d * float64(time.Second); {
	case math.IsNaN(ns) || ns >= math.MaxInt64: // MaxInt64 rounds up to 2^63
		return time.Duration(math.MaxInt64)
	case ns <= 0:
		return 0
	default:
		return time.Duration(ns)
	}
}

// rawDistanceTo is the distance in seconds without the adjustments.
func (a *Coordinate) rawDistanceTo(b *Coordinate) float64 {
	return vecDistance(a.Vec, b.Vec) + a.Height + b.Height
}

// check reports why a cannot be used in a space of dim dimensions: a wrong
// dimension, a non-finite component, or a negative error or height (neither
// of which Vivaldi ever produces).
func (a *Coordinate) check(dim int) error {
	if len(a.Vec) != dim {
		return fmt.Errorf("coordinate has %d dimensions; want %d", len(a.Vec), dim)
	}
	for i, x := range a.Vec {
		if !finite(x) {
			return fmt.Errorf("coordinate component %d is %v", i, x)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"error", a.Error}, {"adjustment", a.Adjustment}, {"height", a.Height}} {
		if !finite(f.v) {
			return fmt.Errorf("coordinate %s is %v", f.name, f.v)
		}
	}
	if a.Error < 0 || a.Height < 0 {
		return fmt.Errorf("coordinate has negative error %v or height %v", a.Error, a.Height)
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// vecDistance is |a - b|, missing components counting as zero.
func vecDistance(a, b []float64) float64 {
	var sum float64
	for i := range max(len(a), len(b)) {
		var x, y float64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		sum += (x - y) * (x - y)
	}
	return math.Sqrt(sum)
}

// vivaldiConfig tunes a vivaldi client; defaultVivaldiConfig gives Serf's.
type vivaldiConfig struct {
	dimensions       int
	errorMax         float64 // cap on Error, and the error of a new coordinate
	ce, cc           float64 // error and position step sizes
	adjustmentWindow int     // samples averaged into Adjustment; 0 disables it
	heightMin        float64 // seconds
	latencyFilter    int     // RTT samples per peer whose median is used
	gravityRho       float64 // seconds; larger is a weaker pull to the origin
}

func defaultVivaldiConfig() vivaldiConfig {
	return vivaldiConfig{
		dimensions:       coordDimensions,
		errorMax:         vivaldiErrorMax,
		ce:               vivaldiCE,
		cc:               vivaldiCC,
		adjustmentWindow: adjustmentWindowSize,
		heightMin:        heightMin,
		latencyFilter:    latencyFilterSize,
		gravityRho:       gravityRho,
	}
}

// vivaldi maintains the local node's coordinate from RTT samples to peers
// (Vivaldi with heights, an adjustment term and gravity, after Dabek et al.
// 2004 and Ledlie et al. 2007). It is not safe for concurrent use; coordState
// guards it.
type vivaldi struct {
	cfg     vivaldiConfig
	rng     *rand.Rand
	coord   Coordinate
	origin  Coordinate
	adj     []float64 // ring of (rtt - raw distance) samples, starts as zeros
	adjNext int
	samples map[string][]float64 // recent RTTs (seconds) per peer, oldest first
	resets  uint64
}

func newVivaldi(cfg vivaldiConfig, rng *rand.Rand) *vivaldi {
	return &vivaldi{
		cfg:     cfg,
		rng:     rng,
		coord:   cfg.newCoordinate(),
		origin:  cfg.newCoordinate(),
		adj:     make([]float64, cfg.adjustmentWindow),
		samples: make(map[string][]float64),
	}
}

// newCoordinate is the coordinate a node starts with: at the origin, with
// the minimum height and the maximum error.
func (cfg vivaldiConfig) newCoordinate() Coordinate {
	return Coordinate{Vec: make([]float64, cfg.dimensions), Error: cfg.errorMax, Height: cfg.heightMin}
}

var errRTTRange = fmt.Errorf("round trip time outside 0-%v", maxCoordRTT)

// update folds one RTT sample to node, whose coordinate is other, into the
// local coordinate. It rejects an unusable other or rtt and leaves the state
// unchanged then. If the result is not finite the coordinate starts over
// from the origin and update reports reset.
func (v *vivaldi) update(node string, other *Coordinate, rtt time.Duration) (reset bool, err error) {
	if err := other.check(v.cfg.dimensions); err != nil {
		return false, err
	}
	if rtt < 0 || rtt > maxCoordRTT {
		return false, fmt.Errorf("%w: %v", errRTTRange, rtt)
	}
	sample := v.filter(node, rtt.Seconds())
	v.vivaldiStep(other, sample)
	v.adjust(other, sample)
	v.gravity()
	if v.coord.check(v.cfg.dimensions) != nil {
		v.resets++
		v.coord = v.cfg.newCoordinate()
		return true, nil
	}
	return false, nil
}

// filter records an RTT sample for node and returns the median of its
// recent samples, which rides out single slow replies.
func (v *vivaldi) filter(node string, rtt float64) float64 {
	s := append(v.samples[node], rtt)
	if n := max(v.cfg.latencyFilter, 1); len(s) > n {
		s = slices.Delete(s, 0, len(s)-n)
	}
	v.samples[node] = s
	sorted := slices.Sorted(slices.Values(s))
	return sorted[len(sorted)/2]
}

// vivaldiStep moves the coordinate along the line to other by a step that
// grows with the prediction error and with our confidence relative to the
// peer's, and updates our error estimate.
func (v *vivaldi) vivaldiStep(other *Coordinate, rtt float64) {
	rtt = max(rtt, coordZeroThreshold)
	dist := v.coord.DistanceTo(other).Seconds()
	relErr := math.Abs(dist-rtt) / rtt
	weight := v.coord.Error / max(v.coord.Error+other.Error, coordZeroThreshold)
	v.coord.Error = min(v.cfg.ce*weight*relErr+v.coord.Error*(1-v.cfg.ce*weight), v.cfg.errorMax)
	v.applyForce(v.cfg.cc*weight*(rtt-dist), other)
}

// adjust records how far the raw distance to other misses rtt and sets the
// adjustment to half the mean miss over the window.
func (v *vivaldi) adjust(other *Coordinate, rtt float64) {
	if len(v.adj) == 0 {
		return
	}
	v.adj[v.adjNext] = rtt - v.coord.rawDistanceTo(other)
	v.adjNext = (v.adjNext + 1) % len(v.adj)
	var sum float64
	for _, s := range v.adj {
		sum += s
	}
	v.coord.Adjustment = sum / (2 * float64(len(v.adj)))
}

// gravity pulls the coordinate toward the origin, more strongly the further
// it is, so the whole space cannot drift away.
func (v *vivaldi) gravity() {
	d := vecDistance(v.coord.Vec, v.origin.Vec)
	if d <= coordZeroThreshold {
		return
	}
	v.applyForce(-math.Pow(d/v.cfg.gravityRho, 2), &v.origin)
}

// applyForce moves the coordinate by force seconds along the unit vector
// from other to it (a positive force pushes away), changing the height in
// proportion. Coinciding vectors push in a random direction.
func (v *vivaldi) applyForce(force float64, other *Coordinate) {
	unit, mag := v.unitVectorFrom(other.Vec)
	for i := range v.coord.Vec {
		v.coord.Vec[i] += unit[i] * force
	}
	if mag > coordZeroThreshold {
		h := (v.coord.Height+other.Height)*force/mag + v.coord.Height
		v.coord.Height = max(h, v.cfg.heightMin)
	}
}

// unitVectorFrom returns the unit vector pointing from "from" to the local
// coordinate and the distance between them; a random unit vector and 0 when
// they coincide.
func (v *vivaldi) unitVectorFrom(from []float64) ([]float64, float64) {
	u := make([]float64, len(v.coord.Vec))
	for i := range u {
		u[i] = v.coord.Vec[i] - from[i]
	}
	if mag := norm(u); mag > coordZeroThreshold || len(u) == 0 {
		scale(u, 1/max(mag, coordZeroThreshold))
		return u, mag
	}
	for {
		for i := range u {
			u[i] = v.rng.NormFloat64() // a uniformly random direction
		}
		if mag := norm(u); mag > coordZeroThreshold {
			scale(u, 1/mag)
			return u, 0
		}
	}
}

func norm(u []float64) float64 {
	var sum float64
	for _, x := range u {
		sum += x * x
	}
	return math.Sqrt(sum)
}

func scale(u []float64, k float64) {
	for i := range u {
		u[i] *= k
	}
}

// forget drops the RTT samples kept for node.
func (v *vivaldi) forget(node string) {
	delete(v.samples, node)
}

// coordState is a Cluster's coordinate machinery: the Vivaldi client and the
// last coordinate heard from each peer. mu is a leaf lock, taken after
// memberMu when both are held; nothing under it blocks.
type coordState struct {
	mu     sync.Mutex
	client *vivaldi
	cache  map[string]*Coordinate // peers only; the local coordinate is client.coord
}

func newCoordState(cfg vivaldiConfig, rng *rand.Rand) *coordState {
	return &coordState{client: newVivaldi(cfg, rng), cache: make(map[string]*Coordinate)}
}

// LocalCoordinate returns a copy of this node's current coordinate, or nil
// when Config.DisableCoordinates is set.
func (c *Cluster) LocalCoordinate() *Coordinate {
	if c.coords == nil {
		return nil
	}
	c.coords.mu.Lock()
	defer c.coords.mu.Unlock()
	return c.coords.client.coord.clone()
}

// Coordinate returns a copy of the coordinate last received from node in a
// ping ack, and whether there is one. For the local node it returns
// LocalCoordinate. Coordinates of members that are reaped are forgotten.
// With Config.DisableCoordinates it always returns nil, false.
func (c *Cluster) Coordinate(node string) (*Coordinate, bool) {
	if c.coords == nil {
		return nil, false
	}
	if node == c.cfg.NodeName {
		return c.LocalCoordinate(), true
	}
	c.coords.mu.Lock()
	defer c.coords.mu.Unlock()
	if co, ok := c.coords.cache[node]; ok {
		return co.clone(), true
	}
	return nil, false
}

// forgetCoordinate drops what is known of node's coordinate. memberMu may be
// held.
func (c *Cluster) forgetCoordinate(node string) {
	if c.coords == nil {
		return
	}
	c.coords.mu.Lock()
	defer c.coords.mu.Unlock()
	delete(c.coords.cache, node)
	c.coords.client.forget(node)
}

// coordinateResets counts how often the local coordinate had to start over.
func (c *Cluster) coordinateResets() uint64 {
	if c.coords == nil {
		return 0
	}
	c.coords.mu.Lock()
	defer c.coords.mu.Unlock()
	return c.coords.client.resets
}
