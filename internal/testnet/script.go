package testnet

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
)

// Script is a raw TCP server whose every connection is handled by a test's
// function: for protocol corner cases a real SMTP server will not produce
// (multi-line greetings split across writes, 421 then close, stalls).
type Script struct {
	ln     net.Listener
	handle func(c net.Conn)
	served chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	sessions int
	conns    map[net.Conn]struct{}
}

// StartScript listens on addr ("127.0.0.3:0" or a port from FreePort) and
// runs handle in its own goroutine for each connection; the connection is
// closed when handle returns. handle must return once its connection is
// closed (Close closes them to end stalled handlers) or on its own. The
// caller must Close the server.
func StartScript(addr string, handle func(c net.Conn)) (*Script, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testnet: script: listen %s: %w", addr, err)
	}
	s := &Script{ln: ln, handle: handle, served: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	go s.serve()
	return s, nil
}

func (s *Script) serve() {
	defer close(s.served)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sessions++
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}

// Addr returns "127.0.0.x:PORT".
func (s *Script) Addr() string { return s.ln.Addr().String() }

// Sessions returns the number of connections accepted so far.
func (s *Script) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Close stops accepting, closes every open connection and waits for every
// handler to return. Safe to call twice.
func (s *Script) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		<-s.served
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return err
}

// ReadData reads a message's content after a 354 reply up to the line
// "." that ends it (RFC 5321 §4.1.1.4), as sent (dot-stuffing kept), and
// leaves that line out; ok is false when the connection ends first. For
// scripted servers that read DATA themselves.
func ReadData(r *bufio.Reader) (content string, ok bool) {
	var b strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		if l == ".\r\n" {
			return b.String(), true
		}
		b.WriteString(l)
	}
}
