//go:build linux

package interop

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The envelope sender of every test message; its bounces are never sent
// (--no-bounce), the tests read the outcomes from the log lines.
const sender = "ok-sender@origin.test"

// message returns a complete RFC 5322 message (Postfix is told to add no
// header field, so the test can compare what arrives octet for octet),
// its lines ended by CRLF, with body appended as given.
func message(subject, to, body string) string {
	return "From: Sender <" + sender + ">\r\n" +
		"To: " + to + "\r\n" +
		"Date: Sat, 05 Dec 2026 01:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@origin.test>\r\n" +
		"Subject: " + subject + "\r\n" +
		"\r\n" + body
}

// newSpool returns the path of a spool for one test; enqueue makes it.
func newSpool(t *testing.T) string {
	return filepath.Join(t.TempDir(), "spool")
}

// enqueue puts msg in the spool with the built binary's enqueue command.
func enqueue(t *testing.T, spool, msg string, rcpts ...string) {
	t.Helper()
	args := append([]string{"enqueue", "--spool", spool, "-f", sender}, rcpts...)
	if r := mxflush(t, msg, args...); r.code != 0 {
		t.Fatalf("enqueue: %v", r)
	}
}

// flush runs one mxflush flush of the spool, asking dns and dialling
// every MX host on port; bounces are not sent (the sender's domain has no
// mail server), the outcomes are in the log lines.
func flush(t *testing.T, spool, dns string, port int, extra ...string) result {
	t.Helper()
	args := append([]string{"flush", "--spool", spool, "--dns", dns, "--port", fmt.Sprint(port),
		"--helo", "client.test", "--no-bounce", "--command-timeout", "30s", "--connect-timeout", "5s"}, extra...)
	r := mxflush(t, "", args...)
	t.Logf("mxflush %s\n%v", strings.Join(args, " "), r)
	return r
}

// logLine matches the fields of a log line the tests check.
var logLine = regexp.MustCompile(`: to=<([^>]*)>, relay=([^,]*), (?:tls=([^,]*), )?delay=[^,]*, dsn=([^,]*), status=(\w+) \((.*)\)$`)

// outcome is one recipient's log line.
type outcome struct {
	relay, tls, dsn, status, reply string
}

// outcomes returns the log lines of a run by recipient, in order.
func outcomes(r result) map[string][]outcome {
	m := map[string][]outcome{}
	for _, line := range strings.Split(r.stderr, "\n") {
		if f := logLine.FindStringSubmatch(line); f != nil {
			m[f[1]] = append(m[f[1]], outcome{relay: f[2], tls: f[3], dsn: f[4], status: f[5], reply: f[6]})
		}
	}
	return m
}

// wantOutcome checks that rcpt has exactly one log line in the run, with
// that status and a dsn and reply that start with the given prefixes.
func wantOutcome(t *testing.T, r result, rcpt, status, dsn, reply string) outcome {
	t.Helper()
	got := outcomes(r)[rcpt]
	if len(got) != 1 {
		t.Errorf("%s: %d log lines, want 1:\n%s", rcpt, len(got), r.stderr)
		return outcome{}
	}
	o := got[0]
	if o.status != status || !strings.HasPrefix(o.dsn, dsn) || !strings.HasPrefix(o.reply, reply) {
		t.Errorf("%s: status=%s dsn=%s (%s), want status=%s dsn=%s (%s...)", rcpt, o.status, o.dsn, o.reply, status, dsn, reply)
	}
	return o
}

// wantExit checks the run's exit code.
func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d", r.code, code)
	}
}
