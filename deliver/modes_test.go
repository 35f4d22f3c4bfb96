package deliver

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

// mode is one of the two ways the envelope goes out (txn.go): each command
// after the reply to the one before (envelopeSequential), or MAIL, the
// RCPTs and DATA as one group (envelopePipelined, RFC 2920).
type mode struct {
	name       string
	ehlo       []string // the fake's EHLO reply
	pipelining bool
}

// eachMode runs a test as one subtest per mode.
func eachMode(t *testing.T, run func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range []mode{
		{"sequential", []string{sequentialEHLO}, false},
		{"pipelining", []string{defaultEHLO}, true},
	} {
		t.Run(m.name, func(t *testing.T) { run(t, m) })
	}
}

// dial is the package's dial, and checks that the session takes m's path.
func (m mode) dial(t testing.TB, o Options, hosts ...mta.Host) *Session {
	t.Helper()
	s := dial(t, o, hosts...)
	if s.pipelining != m.pipelining {
		t.Fatalf("%s: session pipelining = %v", m.name, s.pipelining)
	}
	return s
}

// pick returns seq or pipe for m.
func (m mode) pick(seq, pipe []string) []string {
	if m.pipelining {
		return pipe
	}
	return seq
}

// rcptLines is "RCPT TO:<x>" for each x.
func rcptLines(to ...string) []string {
	out := make([]string, len(to))
	for i, x := range to {
		out[i] = "RCPT TO:<" + x + ">"
	}
	return out
}

func wantTranscript(t testing.TB, f *fake, want []string) {
	t.Helper()
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("transcript\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func asError(t testing.TB, r Result) *mta.Error {
	t.Helper()
	var e *mta.Error
	if !errors.As(r.Err, &e) {
		t.Fatalf("%s: err %v, want *mta.Error", r.Rcpt, r.Err)
	}
	return e
}
