package latency

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// startServer runs handle for every connection to a listener on 127.0.0.1.
func startServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

// echo copies everything back, then half-closes.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

func startProxy(t *testing.T, target string, delay time.Duration) *Proxy {
	t.Helper()
	p, err := Start("127.0.0.1:0", target, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Bytes arrive intact and in order in both directions, however the writes
// are cut, and a half close travels through: the client reads the whole
// echo and then EOF.
func TestProxyKeepsOrderAndHalfClose(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		p := startProxy(t, startServer(t, echo), delay)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 1<<20)
		rng := rand.New(rand.NewPCG(1, uint64(delay)))
		for i := range want {
			want[i] = byte(rng.UintN(256))
		}
		go func() {
			for rest := want; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(9000))
				if _, err := c.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("delay %v: read %d octets (err %v), want the %d sent, in order", delay, len(got), err, len(want))
		}
		if p.Conns() != 1 {
			t.Errorf("delay %v: Conns() = %d, want 1", delay, p.Conns())
		}
	}
}

// A request and its reply take at least two one-way delays: the proxy
// holds each chunk back in each direction. (A lower bound only: the delay
// is the proxy's function, not a performance figure.)
func TestProxyDelaysEachDirection(t *testing.T) {
	const delay = 30 * time.Millisecond
	p := startProxy(t, startServer(t, echo), delay)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("round trip %d: %q, %v", i, buf, err)
		}
		if rtt := time.Since(start); rtt < 2*delay {
			t.Errorf("round trip %d took %v, want at least 2 x %v", i, rtt, delay)
		}
	}
}

// A new connection pays the handshake: a server that speaks first (as an
// SMTP server greets) is heard 4 one-way delays after connect.
func TestProxyConnectCostsHandshake(t *testing.T) {
	const delay = 20 * time.Millisecond
	p := startProxy(t, startServer(t, func(c net.Conn) { c.Write([]byte("220 hi\r\n")) }), delay)
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 8)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "220 hi\r\n" {
		t.Fatalf("greeting %q, %v", buf, err)
	}
	if el := time.Since(start); el < 4*delay {
		t.Errorf("greeting after %v, want at least 4 x %v", el, delay)
	}
}

// Only loopback addresses are accepted, on both sides.
func TestProxyLoopbackOnly(t *testing.T) {
	tests := []struct{ listen, target string }{
		{"0.0.0.0:0", "127.0.0.1:25"},
		{"127.0.0.1:0", "192.0.2.1:25"},
		{"127.0.0.1:0", "mx.example.test:25"},
		{"localhost:0", "127.0.0.1:25"},
	}
	for _, tc := range tests {
		if p, err := Start(tc.listen, tc.target, 0); err == nil {
			p.Close()
			t.Errorf("Start(%q, %q) succeeded, want an error", tc.listen, tc.target)
		}
	}
}

// Close ends proxied connections that are still open.
func TestProxyCloseEndsConnections(t *testing.T) {
	p := startProxy(t, startServer(t, echo), 0)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d octets after Close, want the connection closed", n)
	}
}
