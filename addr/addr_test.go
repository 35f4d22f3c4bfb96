package addr

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		in, want string
		rule     string // substring of the rule broken; "" means valid
	}{
		{"bob@example.test", "bob@example.test", ""},
		{"Bob.Smith+tag@Example.TEST", "Bob.Smith+tag@Example.TEST", ""},
		{`"john doe"@example.test`, `"john doe"@example.test`, "space"},
		{"@hop1.test,@hop2.test:bob@a.test", "bob@a.test", ""},
		{"@hop1.test bob@a.test", "", "space"},
		{"@hop1.test;bob@a.test", "", "source route without a colon"},
		{"@hop1.test:@hop2.test:bob@a.test", "", "not allowed in an unquoted local part"},
		{"bob@[127.0.0.1]", "bob@[127.0.0.1]", ""},
		{"bob@a.test.", "bob@a.test", ""},
		{"bob@.", "", "empty domain"},
		{"bob@[IPv6:::1]", "bob@[IPv6:::1]", ""},
		{"dan@[999.1.1.1]", "", "address literal"},
		{"dan@[::1]", "", "address literal"},
		{"josé@example.test", "josé@example.test", ""},
		{"user@bücher.test", "user@bücher.test", ""},
		{"bob", "", "no @"},
		{"bob@", "", "empty domain"},
		{"@a.test", "", "source route without a colon"},
		{"bob@a.test\r\nRCPT TO:<spy@x.test>", "", "CR or LF"},
		{"bob\x00@a.test", "", "NUL"},
		{"bob\x01@a.test", "", "control character"},
		{"bo:b@a.test", "", "not allowed in an unquoted local part"},
		{strings.Repeat("x", 64) + "@a.test", strings.Repeat("x", 64) + "@a.test", ""},
		{strings.Repeat("x", 65) + "@a.test", "", "local part longer than 64"},
		{"x@" + strings.Repeat("abcdefghi.", 25) + "tests", "", "longer than"},
		{"x@a..test", "", "not a valid host name"},
		{"", "", "empty address"},
		{"bad\xffutf8@a.test", "", "UTF-8"},
	}
	for _, tc := range tests {
		got, err := Check(tc.in)
		if tc.rule == "" {
			if err != nil || got != tc.want {
				t.Errorf("Check(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		var ae *Error
		if !errors.As(err, &ae) || !strings.Contains(ae.Rule, tc.rule) {
			t.Errorf("Check(%q) = %q, %v; want an *Error about %q", tc.in, got, err, tc.rule)
		}
	}
}

// What Check returns must pass Check unchanged: the spool writes it back.
func TestCheckIsIdempotent(t *testing.T) {
	for _, in := range []string{"@a.test:b@c.test", "@a.test,@b.test:c@d.test", "x@[IPv6:::1]", "josé@bücher.test"} {
		once, err := Check(in)
		if err != nil {
			t.Fatalf("Check(%q): %v", in, err)
		}
		if twice, err := Check(once); err != nil || twice != once {
			t.Errorf("Check(Check(%q)) = %q, %v; want %q", in, twice, err, once)
		}
	}
}

func TestDomainAndWire(t *testing.T) {
	tests := []struct {
		mbox, domain, wire string
		utf8               bool
	}{
		{"bob@Example.TEST", "example.test", "bob@Example.TEST", false},
		{"user@bücher.test", "xn--bcher-kva.test", "user@xn--bcher-kva.test", false},
		{"josé@example.test", "example.test", "josé@example.test", true},
		{"bob@[127.0.0.1]", "[127.0.0.1]", "bob@[127.0.0.1]", false},
		{"bob@[ipv6:::1]", "[IPv6:::1]", "bob@[ipv6:::1]", false},
		{"bob@a.test.", "a.test", "bob@a.test.", false},
	}
	for _, tc := range tests {
		d, err := Domain(tc.mbox)
		if err != nil || d != tc.domain {
			t.Errorf("Domain(%q) = %q, %v; want %q", tc.mbox, d, err, tc.domain)
		}
		w, u := Wire(tc.mbox)
		if w != tc.wire || u != tc.utf8 {
			t.Errorf("Wire(%q) = %q, %v; want %q, %v", tc.mbox, w, u, tc.wire, tc.utf8)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"bob@a.test", "@h:b@c.test", "x@[127.0.0.1]", "\"q\"@a.test", "josé@bücher.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Check(in)
		if err != nil {
			return
		}
		if strings.ContainsAny(out, "\r\n\x00<> ") {
			t.Fatalf("Check(%q) accepted %q with a forbidden character", in, out)
		}
		if again, err := Check(out); err != nil || again != out {
			t.Fatalf("not idempotent: Check(%q) = %q, then %q, %v", in, out, again, err)
		}
		if _, err := Domain(out); err != nil {
			t.Fatalf("Check(%q) accepted %q but Domain fails: %v", in, out, err)
		}
	})
}
