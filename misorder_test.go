package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// misorder is a receiver that offers PIPELINING and answers in order,
// except where it is told to misorder:
//
//   - groupOOO: a pipelined MAIL, RCPT, DATA group that starts a
//     transaction gets MAIL's reply, then DATA's 354, then the RCPTs'
//     (as a server that lets DATA's reply overtake the RCPTs' would), and nothing is
//     delivered. With barrier > 0 those replies wait until barrier such
//     groups arrived (at most 3 s), and sessions after the first barrier
//     ones wait at the greeting until the first ones are closed (at most
//     3 s): every first session is lost before any later one can deliver.
//   - lateDot > 0: in session lateSession (1 when 0), the lateDot-th end
//     of data that has a look-ahead group behind it is accepted, but its
//     250 is written after the group's replies (250 MAIL, 250 RCPT...,
//     354), as smtp-sink -W .:N does; the session then waits for the
//     client to hang up.
//   - throttle[n]: session n answers its first MAIL with 421 and closes,
//     as a receiver that limits its clients does.
//
// Commands sent one at a time always get their replies in order.
type misorder struct {
	groupOOO    bool
	barrier     int
	lateDot     int
	lateSession int
	throttle    map[int]bool

	mu        sync.Mutex
	sessions  int
	groups    int           // pipelined groups answered out of order
	release   chan struct{} // closed once barrier groups arrived
	closed    int           // first-generation sessions ended
	firstGone chan struct{} // closed once barrier first sessions ended
	delivered []string      // the recipient of each message accepted
	piped     []int         // sessions in which a pipelined group arrived
}

func (m *misorder) init() {
	m.release, m.firstGone = make(chan struct{}), make(chan struct{})
}

func (m *misorder) deliveredCount() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := map[string]int{}
	for _, r := range m.delivered {
		n[r]++
	}
	return n
}

func (m *misorder) handle(c net.Conn) {
	m.mu.Lock()
	m.sessions++
	session := m.sessions
	m.mu.Unlock()
	first := m.barrier > 0 && session <= m.barrier
	if m.barrier > 0 && !first {
		select {
		case <-m.firstGone:
		case <-time.After(3 * time.Second):
		}
	}
	defer func() {
		if !first {
			return
		}
		m.mu.Lock()
		m.closed++
		if m.closed == m.barrier {
			close(m.firstGone)
		}
		m.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) bool { _, err := fmt.Fprintf(c, "%s\r\n", s); return err == nil }
	readGroup := func() (rcpts []string, ok bool) { // the RCPTs up to DATA
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return nil, false
			}
			l = strings.TrimSpace(l)
			if strings.EqualFold(l, "DATA") {
				return rcpts, true
			}
			if strings.HasPrefix(strings.ToUpper(l), "RCPT TO:") {
				rcpts = append(rcpts, rcptArg(l))
			}
		}
	}
	if !say("220 misorder.test ESMTP") {
		return
	}
	var rcpts []string
	dots := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-misorder.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL") && m.throttle[session]:
			say("421 4.7.0 misorder.test too many connections, try again later")
			return
		case strings.HasPrefix(cmd, "MAIL") && r.Buffered() > 0:
			m.mu.Lock()
			m.piped = append(m.piped, session)
			m.mu.Unlock()
			if !m.groupOOO {
				rcpts = nil
				say("250 2.1.0 Ok")
				continue
			}
			n, ok := readGroup()
			if !ok {
				return
			}
			m.mu.Lock()
			m.groups++
			if m.groups == m.barrier {
				close(m.release)
			}
			m.mu.Unlock()
			if m.barrier > 0 {
				select {
				case <-m.release:
				case <-time.After(3 * time.Second):
				}
			}
			say("250 2.1.0 Ok")
			say("354 End data with <CR><LF>.<CR><LF>")
			for range n {
				say("250 2.1.5 Ok")
			}
			io.Copy(io.Discard, r) // until the client drops the session
			return
		case strings.HasPrefix(cmd, "MAIL"):
			rcpts = nil
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpts = append(rcpts, rcptArg(line))
			say("250 2.1.5 Ok")
		case cmd == "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			if _, ok := testnet.ReadData(r); !ok {
				return
			}
			m.mu.Lock()
			m.delivered = append(m.delivered, rcpts...)
			n := len(m.delivered)
			m.mu.Unlock()
			dots++
			if session == max(m.lateSession, 1) && dots == m.lateDot {
				// The look-ahead group behind the dot: its replies
				// overtake the dot's.
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(strings.ToUpper(line), "MAIL") {
					return
				}
				ahead, ok := readGroup()
				if !ok {
					return
				}
				say("250 2.1.0 Ok")
				for range ahead {
					say("250 2.1.5 Ok")
				}
				say("354 End data with <CR><LF>.<CR><LF>")
				say("250 2.0.0 Ok: queued as " + strconv.Itoa(n))
				io.Copy(io.Discard, r) // until the client drops the session
				return
			}
			say("250 2.0.0 Ok: queued as " + strconv.Itoa(n))
		case cmd == "RSET":
			rcpts = nil
			say("250 2.0.0 Ok")
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Error: command not recognized")
		}
	}
}

// misorderWorld is a world whose a.test MX is m.
func misorderWorld(t *testing.T, m *misorder) *world {
	t.Helper()
	m.init()
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), m.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return w
}
