package mta

import "testing"

// TestParseLine follows RFC 5321 §4.2's reply-line grammar: a code of
// three digits (2-5, 0-5, 0-9), then "-", " " or the end of the line.
func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line string
		code int
		last bool
		text string
		ok   bool
	}{
		{"250-PIPELINING", 250, false, "PIPELINING", true},
		{"250 OK", 250, true, "OK", true},
		{"250", 250, true, "", true},
		{"550 5.1.1 No such user", 550, true, "5.1.1 No such user", true},
		{"421-", 421, false, "", true},
		{"25", 0, false, "", false},
		{"150 x", 0, false, "", false}, // class 1 is not an SMTP reply
		{"260 x", 0, false, "", false}, // second digit above 5
		{"250x", 0, false, "", false},  // no separator
		{"2a0 x", 0, false, "", false}, // not digits
		{"600 x", 0, false, "", false}, // class 6
		{"HTTP/1.1 400", 0, false, "", false},
	} {
		code, last, text, ok := ParseLine(c.line)
		if code != c.code || last != c.last || text != c.text || ok != c.ok {
			t.Errorf("ParseLine(%q) = %d %v %q %v, want %d %v %q %v", c.line, code, last, text, ok, c.code, c.last, c.text, c.ok)
		}
	}
}

// TestSplitStatus: an enhanced status code is taken only when it is well
// formed (RFC 3463 §2) and of the reply's class (RFC 2034 §4).
func TestSplitStatus(t *testing.T) {
	for _, c := range []struct {
		code           int
		text, st, rest string
	}{
		{550, "5.1.1 No such user", "5.1.1", "No such user"},
		{550, "4.1.1 wrong class", "", "4.1.1 wrong class"},
		{452, "4.5.3 Too many recipients", "4.5.3", "Too many recipients"},
		{250, "2.0.0", "2.0.0", ""},
		{550, "5.01.1 leading zero", "", "5.01.1 leading zero"},
		{550, "5.1000.1 four digits", "", "5.1000.1 four digits"},
		{550, "No status", "", "No status"},
		{421, "4.7.0 Error: too many errors", "4.7.0", "Error: too many errors"},
		{556, "5.1.10 null MX", "5.1.10", "null MX"},
		{550, "5.+1.1 sign", "", "5.+1.1 sign"},
		{550, "5.1.1.1 four parts", "", "5.1.1.1 four parts"},
		{550, "5..1 empty subject", "", "5..1 empty subject"},
		{550, "5.1. empty detail", "", "5.1. empty detail"},
	} {
		st, rest := SplitStatus(c.code, c.text)
		if st != c.st || rest != c.rest {
			t.Errorf("SplitStatus(%d, %q) = %q %q, want %q %q", c.code, c.text, st, rest, c.st, c.rest)
		}
	}
}

func TestFormat(t *testing.T) {
	r := Reply{Code: 550, Status: "5.1.1", Lines: []string{"first", "No such\x1buser"}}
	if got, want := r.String(), "550 5.1.1 first; No such user"; got != want {
		t.Errorf("Reply.String() = %q, want %q", got, want)
	}
	e := &Error{Code: 0, Status: "4.4.2", Command: CmdConnect, Target: "mx.d1.test", Msg: "connection refused"}
	if got, want := e.Error(), "temporary: mx.d1.test: connect: 4.4.2 connection refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := Format(550, "", "x"), "550 x"; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
}

// ParseStatus runs on the text of every reply read: it must not allocate.
func TestParseStatusAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { ParseStatus("5.1.1") }); n != 0 {
		t.Errorf("ParseStatus allocates %v times", n)
	}
}

// TestParseStatus: RFC 3463 §2's grammar, class 2, 4 or 5, subject and
// detail of one to three digits without leading zeros (these cases were
// dsn's, whose own checker this one replaced).
func TestParseStatus(t *testing.T) {
	for s, want := range map[string]bool{"5.1.1": true, "4.4.7": true, "2.0.0": true, "5.1.10": true, "5.123.999": true,
		"3.0.0": false, "5.1": false, "5.1.1.1": false, "5..1": false, "5.1.1000": false, "x.1.1": false, "": false,
		"5.01.1": false, "5.+1.1": false} {
		if _, ok := ParseStatus(s); ok != want {
			t.Errorf("ParseStatus(%q) ok = %v, want %v", s, ok, want)
		}
	}
}
