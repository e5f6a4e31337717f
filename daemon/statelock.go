package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// lockStateDirs takes an exclusive lock (flock) on the directory of each
// state file given (the snapshot, the handler spool; "" is skipped), so
// that a second serfd pointed at the same state refuses to start instead
// of writing into the first one's files: two daemons appending to one
// snapshot or one run spool would corrupt both. A directory that does not
// exist yet is left to the component that creates it. The locks are held
// until release is called, or the process ends.
func lockStateDirs(paths ...string) (release func(), err error) {
	var dirs []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		if d := filepath.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	var held []*os.File
	release = func() {
		for _, f := range held {
			f.Close() // closing the last descriptor drops the lock
		}
	}
	for _, d := range dirs {
		f, err := os.Open(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("lock state directory %s: %w", d, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			release()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("state directory %s is in use by another serfd: two daemons must not share a snapshot or a handler spool; give each its own snapshot_path (and handlers spool)", d)
			}
			return nil, fmt.Errorf("lock state directory %s: %w", d, err)
		}
		held = append(held, f)
	}
	return release, nil
}
