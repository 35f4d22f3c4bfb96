package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// The mail world of the life-cycle tests: recipients at a.test and b.test,
// the sender alice@example.test, whose own MX (127.0.0.3) receives the
// bounces.
var lifeZone = []string{
	"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
	"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.4",
	"example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.3",
}

var lifeIPs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

// refusing answers RCPT by the recipient's local part: gone* 550 5.1.1,
// busy* 451 4.7.1, relay* 550 5.7.1; anything else is accepted. The
// sender's MX refuses "nobody@example.test" with 550 5.1.1.
func refusing(string) testnet.SMTPOptions {
	return testnet.SMTPOptions{Rcpt: func(to string) error {
		switch {
		case strings.HasPrefix(to, "gone"), strings.HasPrefix(to, "nobody@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		case strings.HasPrefix(to, "busy"):
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}
		case strings.HasPrefix(to, "relay"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
		}
		return nil
	}}
}

func lifeWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, lifeIPs, refusing, lifeZone...)
	openSpool(t, w.spool) // the layout, for files written by hand
	return w
}

// put writes a spool file by hand into queue (new or cur), as a producer or
// an earlier run would have left it.
func (w *world) put(queue, name, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.spool, queue, name), []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// load reads one spool file's envelope.
func (w *world) load(queue, name string) *spool.Message {
	w.t.Helper()
	m, err := openSpool(w.t, w.spool).Load(queue, name)
	if err != nil {
		w.t.Fatalf("load %s/%s: %v", queue, name, err)
	}
	return m
}

// dsns returns the messages the sender's MX received from <>.
func (w *world) dsns() []testnet.Received {
	var out []testnet.Received
	for _, m := range w.recv["127.0.0.3"].Messages() {
		if m.From == "" {
			out = append(out, m)
		}
	}
	return out
}

// rcptCount counts the accepted copies per recipient over every receiver.
func (w *world) rcptCount() map[string]int {
	n := map[string]int{}
	for _, r := range w.recv {
		for _, m := range r.Messages() {
			for _, to := range m.To {
				n[to]++
			}
		}
	}
	return n
}

// ago formats now-d as an envelope time.
func ago(d time.Duration) string {
	return time.Now().Add(-d).UTC().Format(time.RFC3339)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
