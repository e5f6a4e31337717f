// Package residency tells which pages of a running process's own
// executable are resident, and to which Go packages they belong: the
// file-backed part of VmRSS, explained. It reads /proc/PID/maps for the
// mappings of /proc/PID/exe, /proc/PID/pagemap for each page's present
// bit (readable without privilege; only frame numbers need root), and
// the executable's ELF symbol table to attribute each resident page to the
// symbols it holds, in proportion to their bytes on it.
//
// A page counts as resident when it is mapped into the process, whatever
// touched it: the kernel maps a window of neighbouring pages that are in
// the page cache on each fault (vm fault-around, 64 KiB by default), so
// the figures are of pages, not of bytes executed.
package residency

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Profile is the resident pages of one process's executable.
type Profile struct {
	// Bytes is the resident bytes of every mapping of the executable.
	Bytes int64
	// Sections: resident bytes by ELF section (.text, .rodata, .gopclntab,
	// ...); pages outside every section go under "".
	Sections map[string]int64
	// Packages: resident bytes by package, as Group names it, from the
	// symbols on each page; the part of a page no symbol covers goes under
	// "(section)" in parentheses, e.g. "(.gopclntab)": the runtime's
	// function tables, which have no per-package symbols.
	Packages map[string]float64
}

// Read profiles the executable of process pid.
func Read(pid int) (*Profile, error) {
	exePath := fmt.Sprintf("/proc/%d/exe", pid)
	exe, err := os.Readlink(exePath)
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(exePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s: %w (a stripped binary has no symbols to attribute pages to)", exe, err)
	}
	sort.Slice(syms, func(i, j int) bool { return syms[i].Value < syms[j].Value })
	maps, err := exeMappings(pid, exe, f)
	if err != nil {
		return nil, err
	}
	pagemap, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer pagemap.Close()

	page := uint64(os.Getpagesize())
	p := &Profile{Sections: map[string]int64{}, Packages: map[string]float64{}}
	var entry [8]byte
	for _, m := range maps {
		for addr := m.start; addr < m.end; addr += page {
			if _, err := pagemap.ReadAt(entry[:], int64(addr/page*8)); err != nil {
				return nil, fmt.Errorf("pagemap of %d at %#x: %w", pid, addr, err)
			}
			if binary.LittleEndian.Uint64(entry[:])&(1<<63) == 0 {
				continue
			}
			// An executable linked as PIE is mapped at a load bias; the
			// symbols are at their link addresses.
			link := addr - m.start + m.linkBase
			sec := sectionOf(f, link)
			p.Bytes += int64(page)
			p.Sections[sec] += int64(page)
			covered := attribute(syms, link, link+page, p.Packages)
			if rest := float64(page) - covered; rest > 0 {
				p.Packages["("+sec+")"] += rest
			}
		}
	}
	return p, nil
}

// mapping is one mapping of the executable: its address range in the
// process and the link address its first page corresponds to.
type mapping struct {
	start, end, linkBase uint64
}

// exeMappings lists the mappings of file exe, whose ELF headers are f, in
// /proc/pid/maps. The link address of each is found from its file offset:
// the first mapping (offset 0) of a non-PIE executable is at its link
// address; of a PIE, at a bias that the first mapping tells.
func exeMappings(pid int, exe string, f *elf.File) ([]mapping, error) {
	mf, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer mf.Close()
	type raw struct{ start, end, off uint64 }
	var rs []raw
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || strings.Join(fl[5:], " ") != exe {
			continue
		}
		lo, hi, ok := strings.Cut(fl[0], "-")
		if !ok {
			return nil, fmt.Errorf("/proc/%d/maps: bad range %q", pid, fl[0])
		}
		var r raw
		var errs [3]error
		r.start, errs[0] = strconv.ParseUint(lo, 16, 64)
		r.end, errs[1] = strconv.ParseUint(hi, 16, 64)
		r.off, errs[2] = strconv.ParseUint(fl[2], 16, 64)
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("/proc/%d/maps: %q: %w", pid, sc.Text(), err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("/proc/%d/maps: no mapping of %s", pid, exe)
	}
	// The load bias: where offset 0 is mapped, less the lowest link
	// address of a loaded segment (0 for a PIE, the image base otherwise).
	var linkLow uint64 = 1<<64 - 1
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_LOAD && prog.Off == 0 {
			linkLow = min(linkLow, prog.Vaddr)
		}
	}
	if linkLow == 1<<64-1 {
		return nil, fmt.Errorf("%s: no loadable segment at offset 0", exe)
	}
	bias := rs[0].start - rs[0].off - linkLow
	ms := make([]mapping, len(rs))
	for i, r := range rs {
		ms[i] = mapping{start: r.start, end: r.end, linkBase: r.start - bias}
	}
	return ms, nil
}

// sectionOf names the allocated section holding link address a, or "".
func sectionOf(f *elf.File, a uint64) string {
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Addr != 0 && a >= s.Addr && a < s.Addr+s.Size {
			return s.Name
		}
	}
	return ""
}

// attribute adds to by the bytes of [lo, hi) that each symbol covers,
// under its package, and returns the bytes covered. syms is sorted by
// address.
func attribute(syms []elf.Symbol, lo, hi uint64, by map[string]float64) float64 {
	covered := 0.0
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Value+syms[i].Size > lo })
	for ; i < len(syms) && syms[i].Value < hi; i++ {
		s := syms[i]
		start, end := max(s.Value, lo), min(s.Value+s.Size, hi)
		if end <= start {
			continue
		}
		n := float64(end - start)
		covered += n
		by[Group(s.Name)] += n
	}
	return covered
}

// Group names the package a Go symbol belongs to, coarsely enough to
// compare two binaries: a module outside the standard library by its
// first three path elements (github.com/hashicorp/memberlist), the
// standard library by its top directory ("std crypto"), the runtime's
// constant strings and closures as "go:", type descriptors as "type:".
func Group(sym string) string {
	if pre, _, ok := strings.Cut(sym, ":"); ok && (pre == "go" || pre == "type") {
		return pre + ":"
	}
	// Type arguments may hold paths of their own: name by the function.
	sym, _, _ = strings.Cut(sym, "[")
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot < 0 {
		return sym
	}
	path := sym[:slash+1+dot]
	first, _, _ := strings.Cut(path, "/")
	switch {
	case first == "main":
		return "main"
	case !strings.Contains(first, "."):
		return "std " + first
	}
	// A module is named by three path elements on the code hosts
	// (github.com/owner/name) and golang.org (golang.org/x/net), by two
	// elsewhere (google.golang.org/protobuf).
	n := 2
	switch first {
	case "github.com", "gitlab.com", "codeberg.org", "golang.org":
		n = 3
	}
	if parts := strings.Split(path, "/"); len(parts) > n {
		path = strings.Join(parts[:n], "/")
	}
	return path
}
