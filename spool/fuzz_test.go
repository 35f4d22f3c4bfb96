package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParseEnvelope checks that parsing never panics, that every error is a
// one-line *ParseError, and that whatever parses survives a round trip:
// format the envelope, append the message as Open returns it, parse again:
// same envelope, same message, no longer derived. The seed corpus is in
// testdata/fuzz/FuzzParseEnvelope/.
func FuzzParseEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, needTo := range []bool{true, false} {
			p, err := parseBytes(data, needTo)
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error is %T, want *ParseError: %v", err, err)
				}
				if r := pe.Reason(); strings.ContainsAny(r, "\r\n") {
					t.Fatalf("Reason is not one line: %q", r)
				}
				continue
			}
			body := bodyOf(t, data, p)
			again := append(formatEnvelope(p.env), body...)
			q, err := parseBytes(again, needTo)
			if err != nil {
				t.Fatalf("formatted envelope does not parse: %v\n%q", err, again)
			}
			if q.derived || !envEqual(p.env, q.env) {
				t.Fatalf("round trip changed the envelope:\n%+v\n%+v", p.env, q.env)
			}
			if got := bodyOf(t, again, q); !bytes.Equal(got, body) {
				t.Fatalf("round trip changed the message:\n%q\n%q", body, got)
			}
		}
	})
}

func BenchmarkParseEnvelope(b *testing.B) {
	data := []byte("X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\nX-Envelope-To: <carol@example.test>\n" +
		"X-Envelope-Arrival: 2026-11-29T12:00:00Z\nX-Envelope-Attempts: 2\nX-Envelope-Next-Attempt: 2026-11-29T12:05:00Z\n" +
		"X-Envelope-Reply: <carol@example.test> 451 4.7.1 Greylisted\nFrom: a@example.test\nSubject: x\n\nbody\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := parseBytes(data, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan scans a spool of 10,000 messages (5,000 in new/, 5,000 in
// cur/ with state); each file has a 4 KiB body that Scan must not read.
func BenchmarkScan(b *testing.B) {
	s := newSpool(b)
	body := "Subject: bench\n\n" + strings.Repeat("0123456789abcdef\n", 240)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Format(time.RFC3339)
	for i := range 10000 {
		q, state := "new", ""
		if i%2 == 1 {
			q, state = "cur", "X-Envelope-Arrival: "+at+"\nX-Envelope-Attempts: 1\nX-Envelope-Reply: <b@example.test> 451 4.7.1 Greylisted\n"
		}
		content := "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n" + state + body
		if err := os.WriteFile(filepath.Join(s.Dir(), q, fmt.Sprintf("%d.P1R%x.bench", i, i)), []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		msgs, probs, err := s.Scan(b.Context())
		if err != nil || len(msgs) != 10000 || len(probs) != 0 {
			b.Fatalf("Scan: %d msgs, %d problems, %v", len(msgs), len(probs), err)
		}
	}
}
