package main

import (
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// The progress line is cut to the terminal's width, read with TIOCGWINSZ:
// set a 60-column window on a pseudo-terminal and read it back.
func TestTerminalWidthPTY(t *testing.T) {
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer f.Close()
	ws := struct{ Row, Col, X, Y uint16 }{Row: 24, Col: 60}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		t.Skipf("TIOCSWINSZ: %v", errno)
	}
	if got := terminalWidth(f); got != 60 {
		t.Errorf("terminalWidth = %d, want 60", got)
	}
	plain, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := terminalWidth(plain); got != 0 {
		t.Errorf("terminalWidth of a file that is no terminal = %d, want 0", got)
	}
}
