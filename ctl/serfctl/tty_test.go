package main

import (
	"os"
	"syscall"
	"testing"
)

// A terminal is what answers TCGETS: a pseudo-terminal does; /dev/null (a
// character device too), a pipe and a regular file do not.
func TestIsTTY(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptmx.Close()
	if !isTTY(ptmx) {
		t.Error("isTTY(/dev/ptmx) = false; want true")
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, f := range map[string]*os.File{"/dev/null": null, "a pipe": w, "a file": file} {
		if isTTY(f) {
			t.Errorf("isTTY(%s) = true; want false", name)
		}
	}
}
