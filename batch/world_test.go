package batch

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/spool"
)

// world is one loopback mail world for Run: a DNS server answering zone,
// servers on 127.0.0.x sharing one port (go-smtp receivers or scripted
// ones), a spool, and a Config that reaches them, with flush's defaults
// (8 sessions, 4 per domain) and every recipient's outcome recorded.
type world struct {
	t     *testing.T
	dns   *testnet.DNS
	port  int
	sp    *spool.Spool
	cfg   Config
	gauge *testnet.Gauge
	recv  map[string]*testnet.Receiver // by IP

	mu     sync.Mutex
	events []Event
}

// newWorld starts the DNS server and picks a port free on every IP of ips.
func newWorld(t *testing.T, ips []string, zone ...string) *world {
	t.Helper()
	dns, err := testnet.StartDNS(zone...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	port, err := testnet.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dns: dns, port: port, sp: sp, gauge: &testnet.Gauge{}, recv: map[string]*testnet.Receiver{}}
	w.cfg = Config{
		MaxConns:     8,
		ConnsPerSite: 4,
		Resolver:     &mx.Resolver{Server: dns.Addr(), Timeout: 2 * time.Second},
		Deliver: deliver.Options{
			Helo: "relay.test", Port: port,
			ConnectTimeout: 2 * time.Second, GreetingTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
			DataTimeout: 5 * time.Second, FinalTimeout: 5 * time.Second,
		},
		OnResult: func(e Event) {
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		},
	}
	return w
}

// receive starts a go-smtp receiver on ip, counted by the world's gauge.
func (w *world) receive(ip string, o testnet.SMTPOptions) *testnet.Receiver {
	w.t.Helper()
	o.Active = w.gauge
	r, err := testnet.StartSMTP(ip+":"+strconv.Itoa(w.port), o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { r.Close() })
	w.recv[ip] = r
	return r
}

// script starts a scripted server on ip.
func (w *world) script(ip string, handle func(net.Conn)) *testnet.Script {
	w.t.Helper()
	s, err := testnet.StartScript(ip+":"+strconv.Itoa(w.port), handle)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

// run is one flush with the world's Config.
func (w *world) run() *Summary {
	w.t.Helper()
	w.mu.Lock()
	w.events = nil
	w.mu.Unlock()
	return runLive(w.t, w.sp, w.cfg)
}

// put writes a spool file by hand, as a producer or an earlier run would
// have left it.
func (w *world) put(queue, id, content string) string {
	w.t.Helper()
	p := filepath.Join(w.sp.Dir(), queue, id)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// putMany writes n messages into new/, message i to u<i>@ the i-th of
// domains (round robin), from alice@example.test.
func (w *world) putMany(n int, domains ...string) {
	w.t.Helper()
	body := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 20)
	for i := range n {
		w.put("new", fmt.Sprintf("1732880000.M%d.P1.test", i),
			fmt.Sprintf("X-Envelope-From: <alice@example.test>\nX-Envelope-To: <u%d@%s>\nSubject: m%d\r\n\r\n%s", i, domains[i%len(domains)], i, body))
	}
}

// putMsg writes one message from the address from to rcpts into new/ and
// returns its ID.
func (w *world) putMsg(id, from, subject string, rcpts ...string) string {
	w.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "X-Envelope-From: <%s>\n", from)
	for _, r := range rcpts {
		fmt.Fprintf(&b, "X-Envelope-To: <%s>\n", r)
	}
	fmt.Fprintf(&b, "From: alice@example.test\r\nSubject: %s\r\n\r\nbody of %s\r\n", subject, subject)
	w.put("new", id, b.String())
	return id
}

// files lists the names in one spool queue directory, dot files left out.
func (w *world) files(queue string) []string {
	w.t.Helper()
	ents, err := os.ReadDir(filepath.Join(w.sp.Dir(), queue))
	if err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// queued is every message still waiting, in new/ or cur/.
func (w *world) queued() []string {
	w.t.Helper()
	return append(w.files(spool.QueueNew), w.files(spool.QueueCur)...)
}

func (w *world) load(queue, id string) *spool.Message {
	w.t.Helper()
	m, err := w.sp.Load(queue, id)
	if err != nil {
		w.t.Fatalf("load %s/%s: %v", queue, id, err)
	}
	return m
}

// journal is the crash journal's content.
func (w *world) journal() string {
	w.t.Helper()
	j, err := os.ReadFile(filepath.Join(w.sp.Dir(), "journal"))
	if err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	return string(j)
}

// outcomes returns the last run's events for rcpt.
func (w *world) outcomes(rcpt string) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Event
	for _, e := range w.events {
		if e.Rcpt == rcpt {
			out = append(out, e)
		}
	}
	return out
}

// countEvents counts the last run's events with status st whose reply
// contains reply.
func (w *world) countEvents(st Status, reply string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e.Status == st && strings.Contains(e.Reply, reply) {
			n++
		}
	}
	return n
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

// rows returns the summary's rows by domain, failing on a duplicate.
func rows(t *testing.T, sum *Summary) map[string]DomainStats {
	t.Helper()
	m := map[string]DomainStats{}
	for _, d := range sum.Domains {
		if _, dup := m[d.Domain]; dup {
			t.Errorf("two summary rows for %s", d.Domain)
		}
		m[d.Domain] = d
	}
	return m
}

// onceEach checks that each of the n recipients u<i>@domain was accepted
// exactly once according to count.
func onceEach(t *testing.T, count map[string]int, n int, domains ...string) {
	t.Helper()
	for i := range n {
		rcpt := "u" + strconv.Itoa(i) + "@" + domains[i%len(domains)]
		if count[rcpt] != 1 {
			t.Errorf("%s accepted %d times, want once", rcpt, count[rcpt])
		}
	}
}
