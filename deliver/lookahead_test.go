package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
)

// gate counts the readers open across several sources (source counts its
// own only), to check that a session holds one message open at a time.
type gate struct {
	mu        sync.Mutex
	open, max int
}

// message is the package's message with Open going through the gate.
func (g *gate) message(from string, to []string, src *source, size int64) Message {
	return Message{From: from, To: to, Size: size, Open: func() (io.ReadCloser, error) {
		rc, err := src.Open()
		if err != nil {
			return nil, err
		}
		g.mu.Lock()
		g.open++
		g.max = max(g.max, g.open)
		g.mu.Unlock()
		return &gateReader{ReadCloser: rc, g: g}, nil
	}}
}

type gateReader struct {
	io.ReadCloser
	g    *gate
	once sync.Once
}

func (r *gateReader) Close() error {
	r.once.Do(func() {
		r.g.mu.Lock()
		r.g.open--
		r.g.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

// mailLine is the MAIL command deliver writes to the fake's default EHLO.
func mailLine(from string, size int64) string {
	return fmt.Sprintf("MAIL FROM:<%s> BODY=8BITMIME SIZE=%d", from, size)
}

// traceLines splits a protocol trace (Options.Debug) into its lines.
func traceLines(b *bytes.Buffer) []string {
	return strings.Split(strings.TrimSuffix(b.String(), "\r\n"), "\r\n")
}

// afterDot is the trace line right after the first lone "." (the first
// message's final dot), or "".
func afterDot(lines []string) string {
	if i := slices.Index(lines, "."); i >= 0 && i+1 < len(lines) {
		return lines[i+1]
	}
	return ""
}

// Three messages sent as the batch worker sends them: each SendThen's next
// takes the following message from the queue. With PIPELINING (RFC 2920
// §3.1) the trace shows each next message's MAIL, RCPT and DATA right after
// the previous final dot and before the reply to it; without, next is never
// called. Either way every message is delivered once, in order, each opened
// once and never two at a time.
func TestSendThenChain(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		dots := 0
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if cmd == "." {
				dots++
				return fmt.Sprintf("250 2.0.0 queued as Q%d", dots)
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		var trace bytes.Buffer
		o := opts(port)
		o.Debug = &trace
		s := m.dial(t, o, host("mx.b.test", "127.0.0.2"))

		var g gate
		var srcs []*source
		var queue []Message
		for i := 1; i <= 3; i++ {
			srcs = append(srcs, text(fmt.Sprintf("m%d\n", i)))
			queue = append(queue, g.message(fmt.Sprintf("s%d@a.test", i), []string{fmt.Sprintf("r%d@b.test", i)}, srcs[i-1], 3))
		}
		take := func() (Message, bool) {
			if len(queue) == 0 {
				return Message{}, false
			}
			msg := queue[0]
			queue = queue[1:]
			return msg, true
		}
		calls := 0
		var replies []string
		for cur, ok := take(); ok; {
			var ahead Message
			took := false
			rs, err := s.SendThen(context.Background(), cur, func() (Message, bool) {
				calls++
				ahead, took = take()
				return ahead, took
			})
			if err != nil || rs[0].Err != nil {
				t.Fatalf("message %d: %v %v", len(replies)+1, err, rs)
			}
			replies = append(replies, rs[0].Reply)
			if cur = ahead; !took {
				cur, ok = take()
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}

		if want := []string{"250 2.0.0 queued as Q1", "250 2.0.0 queued as Q2", "250 2.0.0 queued as Q3"}; !slices.Equal(replies, want) {
			t.Errorf("replies %q, want %q", replies, want)
		}
		if want := map[bool]int{true: 3, false: 0}[m.pipelining]; calls != want {
			t.Errorf("next called %d times, want %d", calls, want)
		}
		want := slices.Concat([]string{"220 fake.b.test ESMTP", "EHLO relay.a.test"},
			strings.Split(strings.TrimSuffix(m.ehlo[0], "\r\n"), "\r\n"))
		env := func(i int) []string {
			return []string{mailLine(fmt.Sprintf("s%d@a.test", i), 4), fmt.Sprintf("RCPT TO:<r%d@b.test>", i), "DATA"}
		}
		ok := []string{"250 2.0.0 ok", "250 2.0.0 ok", "354 go ahead"}
		for i := 1; i <= 3; i++ {
			switch {
			case !m.pipelining:
				c := env(i)
				want = append(want, c[0], ok[0], c[1], ok[1], c[2], ok[2])
			case i == 1:
				want = slices.Concat(want, env(i), ok)
			default: // the commands went out behind the previous dot
				want = append(want, ok...)
			}
			want = append(want, fmt.Sprintf("m%d", i), ".")
			if m.pipelining && i < 3 {
				want = append(want, env(i+1)...)
			}
			want = append(want, fmt.Sprintf("250 2.0.0 queued as Q%d", i))
		}
		want = append(want, "QUIT", "221 2.0.0 bye")
		if got := traceLines(&trace); !slices.Equal(got, want) {
			t.Errorf("trace\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if b := f.bodies(); !slices.Equal(b, []string{"m1\r\n", "m2\r\n", "m3\r\n"}) {
			t.Errorf("bodies %q, want m1, m2, m3 in order", b)
		}
		for i, src := range srcs {
			if src.opens != 1 {
				t.Errorf("message %d opened %d times, want once", i+1, src.opens)
			}
			src.check(t)
		}
		if g.open != 0 || g.max != 1 {
			t.Errorf("readers across messages: %d left open, %d open at once; want 0 and 1", g.open, g.max)
		}
	})
}

// sizeEHLO offers PIPELINING and a SIZE limit of 1000 octets (RFC 1870).
const sizeEHLO = "250-fake.b.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n"

// m1 is sent with a look-ahead m2, then m2, then m3 (each SendThen taking
// the next). m2 goes out behind m1's final dot only when it is open and
// checked and its group fits one write; otherwise its outcome comes from
// its own Send (local results at once, without a command), and the session
// goes on to m3.
func TestSendThenLookahead(t *testing.T) {
	tests := []struct {
		name         string
		ehlo         string
		dot1         string // the reply to m1's final dot; "" is 250
		to2          int    // recipients of m2
		size2        int64
		open2        error  // m2's Open fails with it
		want1, want2 string // the outcome of every recipient of m1, of m2
		ahead        bool   // m2's commands go out right behind m1's final dot
	}{
		{"m2 over the SIZE limit", sizeEHLO, "", 1, 5000, nil, "sent", "perm 5.3.4", false},
		{"m2 with more than maxGroup recipients", defaultEHLO, "", maxGroup + 1, 3, nil, "sent", "sent", false},
		{"554 to m1's final dot", defaultEHLO, "554 5.7.1 content rejected", 2, 3, nil, "perm 554", "sent", true},
		{"m2 cannot be opened", defaultEHLO, "", 1, 3, errors.New("spool file gone"), "sent", "temp 4.3.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			dots := 0
			f := &fake{ehlo: []string{tc.ehlo}, reply: func(cmd string) string {
				if cmd == "." {
					if dots++; dots == 1 {
						return tc.dot1
					}
				}
				return ""
			}}
			startFake(t, "127.0.0.2", port, f)
			var trace bytes.Buffer
			o := opts(port)
			o.Debug = &trace
			s := mode{"pipelining", nil, true}.dial(t, o, host("mx.b.test", "127.0.0.2"))
			to2 := make([]string, tc.to2)
			for i := range to2 {
				to2[i] = fmt.Sprintf("r%03d@b.test", i)
			}
			src1, src2, src3 := text("1\n"), text("2\n"), text("3\n")
			src2.failOpen = tc.open2
			m1 := message("one@a.test", []string{"a@b.test"}, src1, 3)
			m2 := message("two@a.test", to2, src2, tc.size2)
			m3 := message("three@a.test", []string{"c@b.test"}, src3, 3)
			then := func(m Message) func() (Message, bool) { return func() (Message, bool) { return m, true } }
			ctx := context.Background()

			rs, err := s.SendThen(ctx, m1, then(m2))
			if err != nil {
				t.Fatalf("m1: %v", err)
			}
			wantOutcomes(t, rs, map[string]string{"a@b.test": tc.want1})
			if next, mail2 := afterDot(traceLines(&trace)), mailLine("two@a.test", tc.size2); (next == mail2) != tc.ahead {
				t.Errorf("after m1's final dot the trace has %q; want m2's MAIL there: %v", next, tc.ahead)
			}
			// m2 is measured for SIZE= (RFC 1870 §4) as it is prepared, and
			// kept: one open, unless its stored size is over the limit
			// already or it cannot be opened.
			if got, want := src2.opens, map[bool]int{true: 1}[tc.want2 == "sent"]; got != want {
				t.Errorf("m2 opened %d times during m1's SendThen, want %d; ahead %v", got, want, tc.ahead)
			}
			rs, err = s.SendThen(ctx, m2, then(m3))
			if err != nil {
				t.Fatalf("m2: %v", err)
			}
			want2 := map[string]string{}
			for _, r := range to2 {
				want2[r] = tc.want2
			}
			wantOutcomes(t, rs, want2)
			if rs, err = s.Send(ctx, m3); err != nil || rs[0].Err != nil {
				t.Fatalf("m3: %v %v", err, rs)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			sent2 := tc.want2 == "sent"
			transcript := []string{"EHLO relay.a.test", mailLine("one@a.test", 3), "RCPT TO:<a@b.test>", "DATA"}
			bodies := []string{"1\r\n"}
			if sent2 {
				transcript = slices.Concat(transcript, []string{mailLine("two@a.test", tc.size2)}, rcptLines(to2...), []string{"DATA"})
				bodies = append(bodies, "2\r\n")
			}
			wantTranscript(t, f, append(transcript, mailLine("three@a.test", 3), "RCPT TO:<c@b.test>", "DATA", "QUIT"))
			if b := f.bodies(); !slices.Equal(b, append(bodies, "3\r\n")) {
				t.Errorf("bodies %q, want %q", b, append(bodies, "3\r\n"))
			}
			if want := map[bool]int{true: 1}[sent2]; src2.opens != want {
				t.Errorf("m2 opened %d times, want %d", src2.opens, want)
			}
			for _, src := range []*source{src1, src2, src3} {
				src.check(t)
			}
		})
	}
}
