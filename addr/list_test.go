package addr

import (
	"strings"
	"testing"
)

// List reads what net/mail reads, and also the domain-less mailboxes cron
// writes ("To: root", "From: \"(Cron Daemon)\" <root>").
func TestList(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "root", want: "root"},
		{in: `"(Cron Daemon)" <root>`, want: "root"},
		{in: "Bob <bob@a.test>, carol@b.test (Carol)", want: "bob@a.test|carol@b.test"},
		{in: `"Doe, John" <j@a.test>,, x@b.test`, want: "j@a.test|x@b.test"},
		{in: "Team: x@a.test, y@a.test;, undisclosed-recipients:;", want: "x@a.test|y@a.test"},
		{in: " x@a.test,\r\n  z@a.test", want: "x@a.test|z@a.test"},
		{in: "<@hop1,@hop2:u@a.test>", want: "@hop1,@hop2:u@a.test"},
		{in: `"a b"@a.test`, want: `"a b"@a.test`},
		{in: "u@[IPv6:::1]", want: "u@[IPv6:::1]"},
		{in: "", want: ""},
		{in: "root (Cron Daemon)", want: "root"},
		{in: "Ops < ops > , (c) cron", want: "ops|cron"},
		{in: "John Doe j@a.test", err: "is not an address"},
		{in: "<a@b.test", err: "angle brackets"},
		{in: `"open`, err: "unterminated quoted string"},
		{in: "a@b.test (open", err: "unterminated comment"},
		{in: "<a@b.test> junk", err: "text after"},
	} {
		got, err := List(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("List(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("List(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		ms, _ := Mailboxes(tc.in)
		for _, m := range ms {
			if tc.in[m.Start:m.End] != m.Addr {
				t.Errorf("Mailboxes(%q): %q at [%d:%d] is %q", tc.in, m.Addr, m.Start, m.End, tc.in[m.Start:m.End])
			}
		}
	}
}

// FuzzMailboxes: no panic, and each address is where it says it is.
func FuzzMailboxes(f *testing.F) {
	for _, s := range []string{`"(Cron Daemon)" <root>`, "Team: x@a.test, y;", "a@b.test (c), <@h:u@d.test>", `"q\"x" <a>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := Mailboxes(in)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Start < 0 || m.End > len(in) || m.Start > m.End || in[m.Start:m.End] != m.Addr {
				t.Fatalf("%q: %+v", in, m)
			}
		}
	})
}
