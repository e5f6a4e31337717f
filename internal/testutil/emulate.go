package testutil

import (
	"os"
	"strings"
	"testing"
	"time"
)

// EmulatorEnv names the environment variable that says the tests run under
// a user-mode emulator, and which one: `make test-arm64` runs the arm64
// test binaries under qemu-user with it set to "qemu-aarch64-static".
// Unset or empty, the tests run natively.
const EmulatorEnv = "SERFD_TEST_EMULATOR"

// EmulatedTimeScale is how many times longer a timing-bound step may take
// under the emulator. Under qemu-user on amd64 a handler's process start
// and the CPU-bound gossip simulation (internal/sim) take about five times
// as long as natively.
const EmulatedTimeScale = 5

// Emulator is the emulator the tests run under, as EmulatorEnv names it,
// or "" when they run natively.
func Emulator() string {
	return strings.TrimSpace(os.Getenv(EmulatorEnv))
}

// Emulated reports whether the tests run under an emulator.
func Emulated() bool { return Emulator() != "" }

// Scale returns d, times EmulatedTimeScale under an emulator: for a
// deadline a step must meet, or the pace of a load a test keeps up, that
// assume native speed.
func Scale(d time.Duration) time.Duration {
	if Emulated() {
		return d * EmulatedTimeScale
	}
	return d
}

// SkipIfEmulated skips the test under an emulator, saying why it cannot
// run there.
func SkipIfEmulated(tb testing.TB, why string) {
	tb.Helper()
	if e := Emulator(); e != "" {
		tb.Skipf("under the emulator %s: %s", e, why)
	}
}
