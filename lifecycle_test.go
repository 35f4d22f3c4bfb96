package main

import (
	"strings"
	"testing"
)

const original = "From: Alice <alice@example.test>\r\nTo: team\r\nSubject: quarterly report\r\nMessage-ID: <q4@example.test>\r\n\r\nthe body is not returned\r\n"

// The command line of a bounce (batch's bounce tests check the DSN field
// by field): exit 69, the bounce pass and the DSN count in the summary,
// and the DSN quotes the header as enqueue queued it, "To: team"
// qualified with the origin (TestMain's origin.test).
func TestFlushBounce(t *testing.T) {
	w := lifeWorld(t)
	w.enqueue("alice@example.test", original, "gone@a.test", "bob@a.test")
	code, out, errs := w.flush()
	if code != 69 {
		t.Fatalf("exit %d, want 69\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "example.test (bounces)") || !strings.Contains(out, "1 delivery status notification(s)") {
		t.Errorf("summary lacks the bounce pass:\n%s", out)
	}
	d := w.dsns()
	if len(d) != 1 || !strings.Contains(string(d[0].Data), "\r\nTo: team@origin.test\r\n") {
		t.Fatalf("the sender's MX got %d DSNs, want one quoting the queued header", len(d))
	}
	if !strings.Contains(errs, "to=<gone@a.test>") || !strings.Contains(errs, "status=bounced (550 5.1.1 No such user)") {
		t.Errorf("the log lacks the bounce:\n%s", errs)
	}
}

// --no-bounce: the failure is recorded and reported (exit 69), no DSN is
// queued or sent.
func TestFlushNoBounceFlag(t *testing.T) {
	w := lifeWorld(t)
	w.enqueue("alice@example.test", original, "gone@a.test")
	if code, out, errs := w.flush("--no-bounce"); code != 69 || len(w.dsns()) != 0 || strings.Contains(out, "delivery status notification") {
		t.Errorf("exit %d, %d DSNs: want 69 and none\n%s\n%s", code, len(w.dsns()), out, errs)
	}
	if got := w.files("failed"); len(got) != 1 {
		t.Errorf("failed/ = %v, want the original alone", got)
	}
}
