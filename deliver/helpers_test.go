package deliver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// Test timeouts: short, so stall tests end in well under a second each.
const (
	fastTimeout = 300 * time.Millisecond
	safeTimeout = 5 * time.Second // for steps that must not time out
)

// opts returns Options for loopback tests on port with generous timeouts.
func opts(port int) Options {
	return Options{
		Helo: "relay.a.test", Port: port,
		ConnectTimeout: safeTimeout, GreetingTimeout: safeTimeout,
		CommandTimeout: safeTimeout, DataTimeout: safeTimeout, FinalTimeout: safeTimeout,
	}
}

func host(name string, ips ...string) mta.Host {
	h := mta.Host{Name: name}
	for _, ip := range ips {
		h.Addrs = append(h.Addrs, netip.MustParseAddr(ip))
	}
	return h
}

func freePort(t testing.TB, ips ...string) int {
	t.Helper()
	p, err := testnet.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addrOf(ip string, port int) string { return fmt.Sprintf("%s:%d", ip, port) }

func startReceiver(t testing.TB, ip string, port int, o testnet.SMTPOptions) *testnet.Receiver {
	t.Helper()
	r, err := testnet.StartSMTP(addrOf(ip, port), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func startScript(t testing.TB, ip string, port int, handle func(net.Conn)) *testnet.Script {
	t.Helper()
	s, err := testnet.StartScript(addrOf(ip, port), handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, o Options, hosts ...mta.Host) *Session {
	t.Helper()
	s, err := Dial(context.Background(), hosts, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// source is a Message.Open that counts opens and checks that at most one
// reader is open at a time.
type source struct {
	mu               sync.Mutex
	body             func() io.Reader
	opens, open, max int
	failOpen         error
}

func text(s string) *source { return &source{body: func() io.Reader { return strings.NewReader(s) }} }

func (s *source) Open() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOpen != nil {
		return nil, s.failOpen
	}
	s.opens++
	s.open++
	s.max = max(s.max, s.open)
	return &srcReader{Reader: s.body(), s: s}, nil
}

type srcReader struct {
	io.Reader
	s    *source
	once sync.Once
}

func (r *srcReader) Close() error {
	r.once.Do(func() {
		r.s.mu.Lock()
		r.s.open--
		r.s.mu.Unlock()
	})
	return nil
}

// check fails the test if a reader was left open or two were open at once.
func (s *source) check(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open != 0 || s.max > 1 {
		t.Errorf("message readers: %d left open, %d open at once", s.open, s.max)
	}
}

func message(from string, to []string, src *source, size int64) Message {
	return Message{From: from, To: to, Size: size, Open: src.Open}
}

// outcome summarises a result: "sent", or "perm 550" / "temp 4.4.2"
// (reply code, or status when there is no code).
func outcome(r Result) string {
	if r.Err == nil {
		return "sent"
	}
	var e *mta.Error
	if !errors.As(r.Err, &e) {
		return "not *mta.Error: " + r.Err.Error()
	}
	kind := "temp"
	if e.Permanent {
		kind = "perm"
	}
	if e.Code != 0 {
		return fmt.Sprintf("%s %d", kind, e.Code)
	}
	return kind + " " + e.Status
}

func outcomes(rs []Result) map[string]string {
	m := make(map[string]string, len(rs))
	for _, r := range rs {
		m[r.Rcpt] = outcome(r)
	}
	return m
}

func wantOutcomes(t testing.TB, rs []Result, want map[string]string) {
	t.Helper()
	got := outcomes(rs)
	if len(got) != len(want) {
		t.Errorf("results %v, want %v", got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("results %v, want %v", got, want)
			return
		}
	}
}

func lostError(t testing.TB, err error) *LostError {
	t.Helper()
	var le *LostError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LostError", err)
	}
	return le
}

// fake is a scripted SMTP server for exact transcripts: it records every
// command line and every message as seen on the wire (still dot-stuffed),
// and answers with reply, whose "" means the default answer. A reply may
// span lines ("250-a\r\n250 b"); "<close>" closes without answering;
// "reply\r\n<close>" answers, then closes; "<stall>" stops answering (reading on until the client or Close ends
// it); "<noread>" stops reading and answering until the test ends.
type fake struct {
	greet []string // greeting, written chunk by chunk with pause between
	ehlo  []string // EHLO reply, the same way
	pause time.Duration
	reply func(cmd string) string
	// afterData runs instead of reading the body when set: it gets the
	// connection after the 354 and returns whether to go on.
	afterData func(c net.Conn, br *bufio.Reader) bool
	// tls, when set, answers a STARTTLS the reply func leaves alone with
	// 220 and a handshake; "<tls>" is then recorded among the commands,
	// and EHLO is answered with ehloTLS (default defaultEHLO; "<close>"
	// closes instead). The default ehlo then offers STARTTLS.
	tls     *tls.Config
	ehloTLS []string
	// starttls, when set, takes over the connection at a STARTTLS line
	// (its reply and whatever follows); the connection ends when it returns.
	starttls func(c net.Conn, br *bufio.Reader)

	mu    sync.Mutex
	cmds  []string
	wire  []string // message content as received, dot-stuffed, per DATA
	early []string // input that arrived before a reply was complete
	done  chan struct{}
}

const defaultEHLO = "250-fake.b.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"

// sequentialEHLO offers no PIPELINING: every command waits for its reply.
const sequentialEHLO = "250-fake.b.test\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"

func startFake(t testing.TB, ip string, port int, f *fake) *testnet.Script {
	t.Helper()
	if f.greet == nil {
		f.greet = []string{"220 fake.b.test ESMTP\r\n"}
	}
	if f.ehlo == nil && f.tls != nil {
		f.ehlo = []string{"250-fake.b.test\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"}
	}
	if f.ehlo == nil {
		f.ehlo = []string{defaultEHLO}
	}
	if f.ehloTLS == nil {
		f.ehloTLS = []string{defaultEHLO}
	}
	if f.reply == nil {
		f.reply = func(string) string { return "" }
	}
	f.done = make(chan struct{})
	s := startScript(t, ip, port, f.serve)
	t.Cleanup(func() { close(f.done) }) // runs before the Script's Close
	return s
}

func (f *fake) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fake) bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.wire...)
}

// write sends chunks; during each pause it checks that the client sends
// nothing (a reply is not complete before its last line, even when split
// across segments).
func (f *fake) write(c net.Conn, br *bufio.Reader, chunks []string) {
	for i, ch := range chunks {
		io.WriteString(c, ch)
		if i == len(chunks)-1 {
			break
		}
		c.SetReadDeadline(time.Now().Add(f.pause))
		if b, err := br.Peek(1); err == nil {
			f.mu.Lock()
			f.early = append(f.early, fmt.Sprintf("%q before %q", b, chunks[i+1]))
			f.mu.Unlock()
		}
		c.SetReadDeadline(time.Time{})
	}
}

func (f *fake) serve(c net.Conn) {
	br := bufio.NewReader(c)
	f.write(c, br, f.greet)
	secure := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(cmd, " ", 2)[0])
		r := f.reply(cmd)
		if head, ok := strings.CutSuffix(r, "<close>"); ok && head != "" {
			io.WriteString(c, head)
			return
		}
		switch {
		case r == "<close>":
			return
		case r == "<stall>":
			io.Copy(io.Discard, br)
			return
		case r == "<noread>":
			<-f.done
			return
		case r != "":
			io.WriteString(c, r+"\r\n")
		case verb == "STARTTLS" && f.starttls != nil:
			f.starttls(c, br)
			return
		case verb == "STARTTLS" && f.tls != nil && !secure:
			io.WriteString(c, "220 2.0.0 ready to start TLS\r\n")
			tc := tls.Server(c, f.tls)
			if tc.Handshake() != nil {
				return
			}
			c, br, secure = tc, bufio.NewReader(tc), true
			f.mu.Lock()
			f.cmds = append(f.cmds, "<tls>")
			f.mu.Unlock()
			continue
		case verb == "EHLO" && secure:
			if f.ehloTLS[0] == "<close>" {
				return
			}
			f.write(c, br, f.ehloTLS)
			continue
		case verb == "EHLO":
			f.write(c, br, f.ehlo)
			continue
		case verb == "HELO":
			io.WriteString(c, "250 fake.b.test\r\n")
		case verb == "QUIT":
			io.WriteString(c, "221 2.0.0 bye\r\n")
			return
		case verb == "DATA":
			io.WriteString(c, "354 go ahead\r\n")
		default:
			io.WriteString(c, "250 2.0.0 ok\r\n")
		}
		if verb != "DATA" || (r != "" && !strings.HasPrefix(r, "354")) {
			continue
		}
		if f.afterData != nil {
			if !f.afterData(c, br) {
				return
			}
			continue
		}
		body, ok := testnet.ReadData(br)
		if !ok {
			return
		}
		f.mu.Lock()
		f.wire = append(f.wire, body)
		f.mu.Unlock()
		r = f.reply(".")
		if head, ok := strings.CutSuffix(r, "<close>"); ok && head != "" {
			io.WriteString(c, head)
			return
		}
		switch r {
		case "<close>":
			return
		case "<stall>":
			io.Copy(io.Discard, br)
			return
		case "":
			r = "250 2.0.0 queued as F1"
		}
		io.WriteString(c, r+"\r\n")
	}
}
