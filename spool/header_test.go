package spool

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// ReadHeader tells a header section from a body as Postfix's cleanup does,
// reads the obsolete syntax (white space before the colon, RFC 5322
// §4.5.3), and Without removes a field with its continuation lines.
func TestReadHeader(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		fields     []string // Name=Value, unfolded
		ended      bool
		rest       string // left in the reader
		withoutBcc string
	}{
		{name: "plain", in: "From: a@x.test\r\nTo: b@x.test\r\n\r\nbody\r\n",
			fields: []string{"From= a@x.test", "To= b@x.test"}, ended: true, rest: "body\r\n",
			withoutBcc: "From: a@x.test\r\nTo: b@x.test\r\n\r\n"},
		{name: "obsolete Bcc with continuation", in: "Bcc : x@y.test,\n  z@y.test\nSubject: s\n\nb\n",
			fields: []string{"Bcc= x@y.test,  z@y.test", "Subject= s"}, ended: true, rest: "b\n",
			withoutBcc: "Subject: s\n\n"},
		{name: "bare body", in: "disk full on web1\n",
			rest: "disk full on web1\n"},
		{name: "body with a colon later", in: "disk full: 100%\n",
			rest: "disk full: 100%\n"},
		{name: "white space first", in: " indented\nTo: b@x.test\n",
			rest: " indented\nTo: b@x.test\n"},
		{name: "header then a body line without the empty line", in: "Subject: s\nno field here\n",
			fields: []string{"Subject= s"}, rest: "no field here\n", withoutBcc: "Subject: s\n"},
		{name: "empty", in: ""},
		{name: "header only, no end of line", in: "Subject: s",
			fields: []string{"Subject= s"}, withoutBcc: "Subject: s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			h, err := ReadHeader(br, 1<<10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range h.Fields {
				got = append(got, f.Name+"="+f.Value)
			}
			if strings.Join(got, "|") != strings.Join(tc.fields, "|") || h.Ended != tc.ended {
				t.Errorf("fields %q ended %v, want %q %v", got, h.Ended, tc.fields, tc.ended)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tc.rest {
				t.Errorf("left %q, want %q", rest, tc.rest)
			}
			if w := string(h.Without("bcc")); w != tc.withoutBcc {
				t.Errorf("Without(bcc) = %q, want %q", w, tc.withoutBcc)
			}
		})
	}
}

// A header section past the limit is a *ParseError, not a silent cut.
func TestReadHeaderLimit(t *testing.T) {
	in := "Subject: " + strings.Repeat("x", 100) + "\nTo: b@x.test\n\n"
	_, err := ReadHeader(bufio.NewReader(strings.NewReader(in)), 64)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "longer than 64 octets") {
		t.Fatalf("err = %v, want a *ParseError about the limit", err)
	}
}

// FuzzReadHeader: nothing is lost or changed (Raw and what is left in the
// reader make the input), and Without("Bcc") leaves no Bcc field.
func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{"From: a@x.test\r\nBcc : b@x.test,\r\n c@x.test\r\n\r\nbody", "disk full\n", "Subject: s\nbody line\n", " x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		h, err := ReadHeader(br, 1<<10)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		if string(h.Raw)+string(rest) != in {
			t.Fatalf("Raw %q + rest %q != %q", h.Raw, rest, in)
		}
		again, err := ReadHeader(bufio.NewReader(strings.NewReader(string(h.Without("bcc")))), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if again.Has("Bcc") {
			t.Fatalf("Bcc left in %q", h.Without("bcc"))
		}
	})
}
