package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEnqueueRefusesBadAddresses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"CR in recipient", []string{"-f", "a@example.test", "bob@a.test\rRSET"}, "CR or LF"},
		{"LF in sender", []string{"-f", "a@example.test\nRSET", "bob@a.test"}, "CR or LF"},
		{"NUL", []string{"-f", "a@example.test", "bob\x00@a.test"}, "NUL"},
		{"empty domain", []string{"-f", "a@example.test", "bob@"}, "empty domain"},
		{"sender empty local part", []string{"-f", "@a.test", "bob@a.test"}, "source route"},
		{"local part too long", []string{"-f", "a@example.test", strings.Repeat("x", 65) + "@a.test"}, "local part longer than 64"},
		{"path too long", []string{"-f", "a@example.test", "x@" + strings.Repeat("abcdefghi.", 26) + "test"}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			var out, errb strings.Builder
			code := run(append([]string{"enqueue", "--spool", dir}, tc.args...), strings.NewReader(msg("x")), &out, &errb)
			if code != 65 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q: want 65 and %q", code, errb.String(), tc.want)
			}
			for _, q := range []string{"tmp", "new"} {
				if ents, _ := os.ReadDir(filepath.Join(dir, q)); len(ents) != 0 {
					t.Errorf("%s/ holds %d files after a refused enqueue", q, len(ents))
				}
			}
		})
	}
}

// -t takes recipients from To, Cc and Bcc and removes Bcc; -f ” is <>.
func TestEnqueueHeadersAndQueue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	in := "From: a@example.test\r\nTo: b@a.test, C <c@b.test>\r\nCc: d@c.test\r\nBcc: hidden@a.test,\r\n  other@b.test\r\nSubject: t\r\n\r\nBcc: body line stays\r\n"
	var out, errb strings.Builder
	if code := run([]string{"enqueue", "--spool", dir, "-f", "", "-t"}, strings.NewReader(in), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	id := strings.TrimSpace(out.String())
	data, err := os.ReadFile(filepath.Join(dir, "new", id))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{"X-Envelope-From: <>", "<b@a.test>", "<c@b.test>", "<d@c.test>", "<hidden@a.test>", "<other@b.test>", "Bcc: body line stays"} {
		if !strings.Contains(s, want) {
			t.Errorf("spool file lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "Bcc: hidden") || strings.Contains(s, "  other@b.test") {
		t.Errorf("Bcc header not removed:\n%s", s)
	}

	out.Reset()
	if code := run([]string{"queue", "--spool", dir, "--json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("queue: exit %d: %s", code, errb.String())
	}
	var e queueEntry
	if err := json.Unmarshal([]byte(out.String()), &e); err != nil {
		t.Fatalf("queue --json: %v\n%s", err, out.String())
	}
	if e.ID != id || e.Sender != "" || len(e.Recipients) != 5 || e.Attempts != 0 || e.Queue != "new" {
		t.Errorf("queue entry %+v", e)
	}
	out.Reset()
	run([]string{"queue", "--spool", dir}, nil, &out, &errb)
	if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "<>") || !strings.Contains(out.String(), "1 message(s), 5 recipient(s)") {
		t.Errorf("queue table:\n%s", out.String())
	}
}

func TestEnqueueUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	var out, errb strings.Builder
	if code := run([]string{"enqueue", "--spool", dir, "-f", "a@example.test"}, strings.NewReader(msg("x")), &out, &errb); code != 64 {
		t.Errorf("no recipients: exit %d, want 64 (%s)", code, errb.String())
	}
	if code := run([]string{"flush", "--bogus"}, nil, &out, &errb); code != 64 {
		t.Errorf("unknown flag: exit %d, want 64", code)
	}
	for _, dns := range []string{"nonsense", "no-such-host.test:53", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1"} {
		if code := run([]string{"flush", "--spool", dir, "--dns", dns}, nil, &out, &errb); code != 78 {
			t.Errorf("--dns %s: exit %d, want 78", dns, code)
		}
	}
	for _, helo := range []string{"a b", "relay.test\r\nRSET", "-bad-.test"} {
		if code := run([]string{"flush", "--spool", dir, "--dns", "127.0.0.1:53", "--helo", helo}, nil, &out, &errb); code != 64 {
			t.Errorf("--helo %q: exit %d, want 64", helo, code)
		}
	}
	// An empty spool path would make the current directory the spool.
	for _, args := range [][]string{{"flush", "--spool", ""}, {"queue", "--spool", " "}} {
		if code := run(args, nil, &out, &errb); code != 64 {
			t.Errorf("%q: exit %d, want 64", args, code)
		}
	}
	if ents, _ := os.ReadDir("."); slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == "new" || e.Name() == "lock" }) {
		t.Error("an empty --spool created spool directories in the current directory")
	}
	// A message that would read as envelope lines, or holds nothing, is bad
	// input: 65, like a bad address. (Input without a header section is a
	// body: see TestSubmitBareBody.)
	for _, in := range []string{"", " \n\n", "X-Envelope-To: <x@a.test>\nSubject: s\n\nb\n"} {
		if code := run([]string{"enqueue", "--spool", dir, "-f", "a@example.test", "b@a.test"}, strings.NewReader(in), &out, &errb); code != 65 {
			t.Errorf("enqueue %q: exit %d, want 65", in, code)
		}
	}
}
