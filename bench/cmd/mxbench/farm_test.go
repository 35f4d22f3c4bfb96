package main

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// openConns must count the server side of a connection from accept to the
// server's close, and nothing else: not the listener, not the client's
// socket. The farm waits on it before reading smtp-sink's session count.
func TestOpenConns(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.77:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	count := func() int {
		t.Helper()
		n, err := openConns([]string{"127.0.0.77"}, port)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("listener alone: %d open, want 0", n)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("one accepted connection: %d open, want 1", n)
	}
	server.Close()
	if n := count(); n != 0 {
		t.Fatalf("after the server's close: %d open, want 0", n)
	}
}

// treeCPU reads the fallback's /proc fields: this process's own times must
// parse, and a PID that does not exist is an error, not zero.
func TestTreeCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	ppid, _, err := procTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid != os.Getppid() {
		t.Errorf("procTimes: parent %d, want %d", ppid, os.Getppid())
	}
	if _, err := treeCPU(os.Getpid()); err != nil {
		t.Errorf("treeCPU of this process: %v", err)
	}
	if _, err := treeCPU(1 << 30); err == nil {
		t.Errorf("treeCPU of PID %s: no error", strconv.Itoa(1<<30))
	}
}
