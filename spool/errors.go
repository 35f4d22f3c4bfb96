package spool

import (
	"github.com/mxflush/mxflush/mta"

	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseError says why a spool file cannot be read as a message: which file,
// which line and which rule. It is permanent: the file will not become valid
// by waiting, so Scan moves it to bad/.
type ParseError struct {
	File string // path relative to the spool directory, "new/1700000000.P12R3f.host"
	Line int    // 1-based line number in the file; 0 when the rule is about the whole file
	Msg  string // the rule that was broken, in plain words, one line
	Err  error  // the cause (an *addr.Error, a net/mail error), or nil
}

// Error returns "spool: FILE: line N: MSG".
func (e *ParseError) Error() string {
	if e.File == "" {
		return "spool: " + e.Reason()
	}
	return "spool: " + quoteName(e.File) + ": " + e.Reason()
}

// Reason is Error without the file: "line 3: X-Envelope-To: invalid address ...".
// It is always a single line.
func (e *ParseError) Reason() string {
	if e.Line > 0 {
		return mta.OneLine("line " + strconv.Itoa(e.Line) + ": " + e.Msg)
	}
	return mta.OneLine(e.Msg)
}

func (e *ParseError) Unwrap() error { return e.Err }

func perr(line int, err error, format string, args ...any) *ParseError {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// quoteName quotes a file name (strconv.QuoteToASCII) when it holds a
// space, a control character, anything else that is not printable, or an
// octet that is not UTF-8: no name printed in an error can break a line
// or drive a terminal.
func quoteName(s string) string {
	if !safeName(s) || strings.ContainsRune(s, ' ') {
		return strconv.QuoteToASCII(s)
	}
	return s
}

// safeName reports whether a file name is valid UTF-8 of printable
// characters (the space included): no control character (a newline would
// forge a log line, an ESC drive a terminal), no bidirectional override.
// Scan moves a message whose name is not to bad/ under a fresh name.
func safeName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) })
}
