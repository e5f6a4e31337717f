// Package sim runs serfd's gossip layer at sizes past one machine's process
// limit: hundreds to thousands of gossip.Cluster nodes in one process,
// each with the real memberlist and serfd's own Serf layer (profile lan, as
// shipped), over an in-memory network (Network, Transport) that can lose
// packets and cut nodes off. `make sim` (cmd/sim) measures user event
// dissemination, convergence after a join storm, failure detection, false
// positives under packet loss, gossip traffic and memory per node, and
// sets them beside theory (theory.go).
//
// Its room is measuring: it imports gossip and memberlist (for the
// Transport interface) and nothing else of the project. On a machine with
// few cores the simulated nodes share the CPU, so timings stretch as the
// cluster grows; cmd/sim reports the CPU the run used beside every figure.
package sim
