// Package latency is a TCP proxy on loopback that delays every chunk of
// bytes by a fixed one-way delay in each direction, keeping their order: a
// wide-area round trip simulated in user space, for benchmarks on kernels
// without the netem qdisc.
package latency

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Proxy accepts connections on a loopback address and connects each one to
// the target. Every chunk read from either side is written to the other
// side Delay after it was read, in order, so a request and its reply cost
// 2 x Delay more than without the proxy; a close (FIN) is passed on after
// the same delay. A new connection also pays for the TCP handshake, which
// the local accept does not: the proxy connects to the target 3 x Delay
// after accepting (SYN, SYN-ACK, ACK), so the server's first bytes (an SMTP
// greeting) arrive 4 x Delay after connect, as over a real network. Methods
// are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
	done   chan struct{} // closed by Close

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	count  int
	closed bool
}

// Start listens on listen ("127.0.0.3:2525", or port 0 for any) and proxies
// to target with the given one-way delay. Both addresses must be IP
// literals in 127.0.0.0/8 or ::1: the proxy never carries traffic off the
// machine. The caller must Close it.
func Start(listen, target string, delay time.Duration) (*Proxy, error) {
	for _, a := range []string{listen, target} {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().IsLoopback() {
			return nil, fmt.Errorf("latency: %q is not a loopback IP:port", a)
		}
	}
	if delay < 0 {
		return nil, fmt.Errorf("latency: negative delay %v", delay)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("latency: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr returns the address the proxy listens on, "127.0.0.3:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Conns returns how many connections the proxy has accepted.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// Close stops accepting, closes every proxied connection and waits for
// their goroutines. Safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c for Close; false when the proxy is closing.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// handle proxies one client connection.
func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		client.Close()
		return
	}
	t := time.NewTimer(3 * p.delay) // the handshake's one and a half round trips
	select {
	case <-t.C:
	case <-p.done:
		t.Stop()
		p.untrack(client)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(server) {
		p.untrack(client)
		server.Close()
		return
	}
	p.mu.Lock()
	p.count++
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(client, server) }()
	go func() { defer wg.Done(); p.pipe(server, client) }()
	wg.Wait()
	p.untrack(client, server)
}

// chunk is what one Read returned, due for writing at due.
type chunk struct {
	data []byte
	due  time.Time
	err  error // set on the last chunk: io.EOF or the read error
}

// pipe copies src to dst, each chunk delay after it was read. When src ends
// with EOF, dst gets a half close (FIN) delay later; on any other error
// both connections are closed.
func (p *Proxy) pipe(src, dst net.Conn) {
	ch := make(chan chunk, 256) // back-pressure: at most 256 chunks in flight per direction
	go func() {
		defer close(ch)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			due := time.Now().Add(p.delay)
			if n > 0 {
				ch <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
			}
			if err != nil {
				ch <- chunk{due: due, err: err}
				return
			}
		}
	}()
	for c := range ch {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					continue
				}
			}
			src.Close()
			dst.Close()
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			src.Close() // the reader goroutine ends; drain its chunks
			dst.Close()
		}
	}
}
