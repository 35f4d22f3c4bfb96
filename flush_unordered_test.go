package main

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// unordered is a receiver that offers PIPELINING but answers a pipelined
// group out of order, as smtp-sink -W does when it delays one reply: for
// MAIL, RCPT and DATA read in one go it answers MAIL, then DATA's 354, then
// RCPT. Commands sent one at a time get their replies in order.
type unordered struct {
	mu        sync.Mutex
	sessions  int
	delivered []string // the recipient of each accepted message
}

func (u *unordered) handle(c net.Conn) {
	u.mu.Lock()
	u.sessions++
	u.mu.Unlock()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) bool { _, err := fmt.Fprintf(c, "%s\r\n", s); return err == nil }
	if !say("220 unordered.test ESMTP") {
		return
	}
	var rcpt string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-unordered.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL") && r.Buffered() > 0:
			// A pipelined group: read it whole, answer out of order.
			var rcpts int
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.EqualFold(strings.TrimSpace(l), "DATA") {
					break
				}
				rcpts++
			}
			say("250 2.1.0 Ok")
			say("354 End data with <CR><LF>.<CR><LF>")
			for range rcpts {
				say("250 2.1.5 Ok")
			}
			// The client drops the session on the 354 read as a RCPT
			// reply; anything else it sends here is not a message.
			return
		case strings.HasPrefix(cmd, "MAIL"):
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpt = strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<>")
			say("250 2.1.5 Ok")
		case cmd == "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			u.mu.Lock()
			u.delivered = append(u.delivered, rcpt)
			n := len(u.delivered)
			u.mu.Unlock()
			say("250 2.0.0 Ok: queued as " + strconv.Itoa(n))
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Error: command not recognized")
		}
	}
}

// A server that answers pipelined groups out of order (RFC 2920 §3.1
// wants them in order) loses the first session, which was safe to resend
// (no final dot went out); the next session speaks one command at a time
// and every message is delivered once, in the same run.
func TestFlushOutOfOrderServerFallsBackToNoPipelining(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	u := &unordered{}
	sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), u.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	const n = 6
	for i := range n {
		w.enqueue("alice@example.test", msg(fmt.Sprint(i)), fmt.Sprintf("u%d@a.test", i))
	}
	code, out, errs := w.flush("--conns-per-domain", "1")
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, tail(errs, 2000))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.sessions != 2 {
		t.Errorf("%d sessions, want 2 (the pipelined one, lost; then one without PIPELINING)", u.sessions)
	}
	seen := map[string]int{}
	for _, r := range u.delivered {
		seen[r]++
	}
	for i := range n {
		if r := fmt.Sprintf("u%d@a.test", i); seen[r] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", r, seen[r], u.delivered)
		}
	}
	if left := len(w.files("new")) + len(w.files("cur")); left != 0 {
		t.Errorf("%d messages still queued, want 0", left)
	}
}
