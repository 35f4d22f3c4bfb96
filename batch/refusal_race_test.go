package batch

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A receiver that takes one session from us and refuses one more with a
// 5yz greeting (554 5.7.1 too many connections), answered only once the
// first session has ended: the message the second worker held while it
// dialled is not bounced. The site had a session in this run, so the
// refusal is about that connection, not the mail: the message is deferred
// (or carried), never failed, and the next run delivers it.
func TestSecondSessionRefusedPermanentlyDoesNotBounce(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "one.test. MX 10 mx.one.test.", "mx.one.test. A 127.0.0.2")
	var mu sync.Mutex
	conns := 0
	firstDone := make(chan struct{})
	got := map[string]int{}
	w.script("127.0.0.2", func(c net.Conn) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		if n == 2 {
			select {
			case <-firstDone:
			case <-time.After(10 * time.Second):
			}
			fmt.Fprintf(c, "554 5.7.1 too many connections from your address\r\n")
			return
		}
		if n == 1 {
			defer close(firstDone)
		}
		serveOK(c, func(rcpts []string) {
			mu.Lock()
			for _, r := range rcpts {
				got[r]++
			}
			mu.Unlock()
		})
	})
	const n = 25 // two sessions at the start (see sessionsFor)
	w.putMany(n, "one.test")
	sum := w.run()
	if sum.Totals.Failed != 0 || sum.Bounces != 0 || len(w.files("failed")) != 0 {
		t.Fatalf("totals %+v, %d bounces, failed/ %v: a session refused while another of the site's worked bounced mail",
			sum.Totals, sum.Bounces, w.files("failed"))
	}
	if sum.Totals.Delivered+sum.Totals.Deferred != n {
		t.Errorf("totals %+v, want %d delivered or deferred", sum.Totals, n)
	}
	w.cfg.All = true
	w.run()
	mu.Lock()
	defer mu.Unlock()
	onceEach(t, got, n, "one.test")
}

// serveOK is a plain SMTP receiver on c, with PIPELINING, that accepts
// every message and reports each one's recipients to accepted.
func serveOK(c net.Conn, accepted func(rcpts []string)) {
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 ok.test ESMTP\r\n")
	var rcpts []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			fmt.Fprintf(c, "250-ok.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "MAIL"):
			rcpts = nil
			fmt.Fprintf(c, "250 2.1.0 ok\r\n")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpts = append(rcpts, rcptArg(line))
			fmt.Fprintf(c, "250 2.1.5 ok\r\n")
		case cmd == "DATA":
			fmt.Fprintf(c, "354 go ahead\r\n")
			if _, ok := testnet.ReadData(r); !ok {
				return
			}
			accepted(rcpts)
			fmt.Fprintf(c, "250 2.0.0 queued\r\n")
		case cmd == "RSET" || cmd == "NOOP":
			fmt.Fprintf(c, "250 2.0.0 ok\r\n")
		case cmd == "QUIT":
			fmt.Fprintf(c, "221 2.0.0 bye\r\n")
			return
		default:
			fmt.Fprintf(c, "502 5.5.2 unknown command\r\n")
		}
	}
}
