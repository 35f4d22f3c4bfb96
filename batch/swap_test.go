package batch

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/spool"
)

// hookResolver runs before once, at the first lookup: after the scan and
// before any message is opened for delivery.
type hookResolver struct {
	Resolver
	once   sync.Once
	before func()
}

func (h *hookResolver) Lookup(ctx context.Context, domain string) (mx.Route, error) {
	h.once.Do(h.before)
	return h.Resolver.Lookup(ctx, domain)
}

// testWorld is a DNS server and a receiver for a.test (and the domains
// of extra records, such as "b.test. MX 10 mx.a.test."), and a spool.
type testWorld struct {
	dns  *testnet.DNS
	sp   *spool.Spool
	recv *testnet.Receiver
	cfg  Config
}

func newTestWorld(t *testing.T, o testnet.SMTPOptions, extra ...string) *testWorld {
	t.Helper()
	dns, err := testnet.StartDNS(append([]string{"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	port, err := testnet.FreePort("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	recv, err := testnet.StartSMTP("127.0.0.2:"+strconv.Itoa(port), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	sp, err := spool.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	return &testWorld{dns: dns, sp: sp, recv: recv, cfg: Config{
		MaxConns: 2,
		Resolver: &mx.Resolver{Server: dns.Addr()},
		Deliver:  deliver.Options{Helo: "relay.test", Port: port},
	}}
}

// put writes a spool file by hand, as any producer may.
func (w *testWorld) put(t *testing.T, queue, id, content string) string {
	t.Helper()
	p := filepath.Join(w.sp.Dir(), queue, id)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runLive runs a flush and fails the test, rather than hanging it, when
// the run never returns (a liveness check, not a timing).
func runLive(t *testing.T, sp *spool.Spool, cfg Config) *Summary {
	t.Helper()
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(context.Background(), sp, cfg)
		done <- result{sum, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.sum
	case <-time.After(2 * time.Minute):
		t.Fatal("the flush never returned")
		return nil
	}
}

// A queued file swapped after the scan, for a symbolic link to a file the
// attacker cannot read (with its size and modification time copied) or for
// a FIFO, is a spool problem: nothing of the linked file is sent, the run
// does not block, the message is neither deferred nor bounced (though it
// is past the queue lifetime), and the other message is delivered.
func TestFlushRefusesSwappedFile(t *testing.T) {
	const queued = "X-Envelope-From: <a@src.test>\nX-Envelope-To: <attacker@a.test>\nX-Envelope-Arrival: 2020-01-01T00:00:00Z\n\nSubject: mine!!\n\nxxxxxx\n"
	const secret = "X-Envelope-From: <a@src.test>\nX-Envelope-To: <attacker@a.test>\nX-Envelope-Arrival: 2020-01-01T00:00:00Z\n\nSubject: shadow\n\nSECRET\n"
	for _, kind := range []string{"symlink", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			w := newTestWorld(t, testnet.SMTPOptions{})
			w.put(t, "new", "2.other", "X-Envelope-From: <a@src.test>\nX-Envelope-To: <bob@a.test>\n\nSubject: fine\n\nhello\n")
			p := w.put(t, "new", "1.swapped", queued)
			w.cfg.Resolver = &hookResolver{Resolver: w.cfg.Resolver, before: func() {
				fi, err := os.Stat(p)
				if err != nil {
					t.Error(err)
					return
				}
				os.Rename(p, filepath.Join(w.sp.Dir(), "moved-away"))
				switch kind {
				case "symlink":
					victim := filepath.Join(t.TempDir(), "shadow")
					os.WriteFile(victim, []byte(secret), 0o600)
					os.Chtimes(victim, fi.ModTime(), fi.ModTime())
					if err := os.Symlink(victim, p); err != nil {
						t.Error(err)
					}
				case "fifo":
					if err := syscall.Mkfifo(p, 0o600); err != nil {
						t.Error(err)
					}
				}
			}}
			sum := runLive(t, w.sp, w.cfg)
			for _, m := range w.recv.Messages() {
				if strings.Contains(string(m.Data), "SECRET") || strings.Contains(string(m.Data), "shadow") {
					t.Errorf("the linked file was sent to %v:\n%s", m.To, m.Data)
				}
			}
			if got := len(w.recv.Messages()); got != 1 {
				t.Errorf("%d messages received, want 1 (the other one)", got)
			}
			if sum.Totals.Delivered != 1 || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 || sum.Bounces != 0 {
				t.Errorf("totals %+v, bounces %d: want 1 delivered, nothing deferred, failed or bounced", sum.Totals, sum.Bounces)
			}
			var found bool
			for _, pr := range sum.Problems {
				if pr.ID == "1.swapped" && strings.Contains(pr.Reason, "not sent") {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %+v, want one for 1.swapped", sum.Problems)
			}
			for _, q := range []string{"cur", "failed"} {
				if es, _ := os.ReadDir(filepath.Join(w.sp.Dir(), q)); len(es) != 0 {
					t.Errorf("%s/ holds %d files: the swapped message was recorded as an attempt", q, len(es))
				}
			}
		})
	}
}
