package testnet

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestScript(t *testing.T) {
	s, err := StartScript("127.0.0.3:0", func(c net.Conn) {
		io.WriteString(c, "220-first\r\n")
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, "220 second\r\n")
		io.Copy(io.Discard, c) // stall until the client or Close ends it
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, want := range []string{"220-first\r\n", "220 second\r\n"} {
		if l, err := br.ReadString('\n'); l != want {
			t.Fatalf("read %q, %v; want %q", l, err, want)
		}
	}
	if s.Sessions() != 1 {
		t.Errorf("Sessions = %d", s.Sessions())
	}
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the stalled handler")
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("connection still open after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFreePort(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, err := FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d not free on %s: %v", port, ip, err)
		}
		defer l.Close()
	}
	// With the port now held on 127.0.0.3, FreePort must pick another one.
	p2, err := FreePort(ips...)
	if err != nil || p2 == port {
		t.Fatalf("FreePort while %d is held = %d, %v", port, p2, err)
	}
	if p, err := FreePort(); err != nil || p == 0 {
		t.Errorf("FreePort() = %d, %v", p, err)
	}
}
