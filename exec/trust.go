package exec

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// TrustProblem says why a file serfd runs or reads its configuration from
// must not be trusted, or "" if it may be: it must be a regular file (not a
// FIFO, a device or a socket, which could block a read or feed it without
// end), not group- or world-writable, and owned by root or by euid (the
// user serfd runs as), so that no other user can change what serfd does.
func TrustProblem(fi fs.FileInfo, euid int) string {
	if !fi.Mode().IsRegular() {
		return "not a regular file"
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("group- or world-writable (mode %04o)", perm)
	}
	return ownerProblem(fi, euid)
}

// ownerProblem refuses a file owned by anyone but root or euid.
func ownerProblem(fi fs.FileInfo, euid int) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "owner unknown"
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Sprintf("owned by uid %d, not root or the daemon's uid %d", st.Uid, euid)
	}
	return ""
}

// ReadTrusted reads a file that TrustProblem accepts, at most limit bytes.
// It opens the file without blocking (a FIFO or a device never stalls the
// caller), checks what it opened (a symlink's target), and refuses a file
// larger than limit. The error names the file, the problem and the fix.
func ReadTrusted(path string, euid int, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if p := TrustProblem(fi, euid); p != "" {
		return nil, fmt.Errorf("%s: refused: %s; it must be a regular file owned by root (or uid %d), "+
			"not writable by group or others (fix: chown root %[1]s; chmod go-w %[1]s)", path, p, euid)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: refused: %d bytes, over the limit of %d", path, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: refused: over the limit of %d bytes", path, limit)
	}
	return b, nil
}
