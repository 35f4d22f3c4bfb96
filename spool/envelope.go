package spool

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mxflush/mxflush/addr"
)

// Envelope is the SMTP envelope of one spooled message plus its queue state.
// All times are UTC with second precision.
type Envelope struct {
	// UID is the message's identity, kept by every state change and by a
	// move to another host: X-Envelope-Id, a random ID written when the
	// message enters the spool (Enqueue). A file without that line (a
	// producer's file) gets a fingerprint of what Scan read, "fp-..." (see
	// fingerprint), which its first state change writes down. The crash
	// journal is keyed by it, and two files of the same name are copies of
	// one message exactly when their UIDs are equal.
	UID         string
	From        string            // envelope sender, checked mailbox; "" is the null sender <>
	To          []string          // recipients still pending, checked mailboxes, in file order
	Arrival     time.Time         // UTC; when the message entered the spool
	Attempts    int               // delivery attempts so far
	NextAttempt time.Time         // UTC; zero means due now
	Warned      time.Time         // UTC; when the one delay warning (a "delayed" DSN) was enqueued; zero: none yet
	Replies     map[string]string // last reply per pending recipient ("451 4.7.1 Greylisted"), may be nil
	Failed      []Failure         // recipients that failed permanently, with the reply
}

// Failure is a recipient that failed permanently, the reply that said so
// ("550 5.1.1 No such user"), one line, and how the sender was told.
type Failure struct {
	Rcpt, Reply string
	Notice      Notice
}

// Notice says whether the sender was sent a bounce for a failure. It is
// decided, and the bounce enqueued, before the failure is written, so every
// Failed line carries the decision made for it; a run never bounces a
// failure that is already in the file.
type Notice string

// Notices, as written before the recipient on an X-Envelope-Failed line.
const (
	NoticeUnknown Notice = ""            // no token: a file written before notices existed; never bounced later
	NoticeBounced Notice = "bounced"     // a DSN (RFC 3464) naming this recipient was enqueued to the sender
	NoticeNone    Notice = "not-bounced" // no DSN: the sender is <> (no bounce loops) or the run had --no-bounce
)

// Canonical envelope field names. Matching is case-insensitive.
const (
	envPrefix       = "x-envelope-" // lower case, for prefix tests
	fieldID         = "X-Envelope-Id"
	fieldFrom       = "X-Envelope-From"
	fieldTo         = "X-Envelope-To"
	fieldArrival    = "X-Envelope-Arrival"
	fieldAttempts   = "X-Envelope-Attempts"
	fieldNext       = "X-Envelope-Next-Attempt"
	fieldWarned     = "X-Envelope-Warned"
	fieldReply      = "X-Envelope-Reply"
	fieldFailed     = "X-Envelope-Failed"
	knownFields     = "X-Envelope-Id, -From, -To, -Arrival, -Attempts, -Next-Attempt, -Warned, -Reply, -Failed"
	maxUID          = 128 // octets of an X-Envelope-Id value
	maxAttemptsText = 9   // digits; keeps Attempts far below any int overflow
)

// canonicalField returns the canonical spelling of an envelope field name,
// or "" when name is not one.
func canonicalField(name string) string {
	for _, f := range [...]string{fieldID, fieldFrom, fieldTo, fieldArrival, fieldAttempts, fieldNext, fieldWarned, fieldReply, fieldFailed} {
		if strings.EqualFold(name, f) {
			return f
		}
	}
	return ""
}

// hasEnvPrefix reports whether b starts with "X-Envelope-" in any case.
func hasEnvPrefix(b []byte) bool {
	return len(b) >= len(envPrefix) && strings.EqualFold(string(b[:len(envPrefix)]), envPrefix)
}

// checkMailbox is addr.Check made idempotent: it also refuses a mailbox that
// would change again if checked a second time ("@a:@b:c@d" strips only one
// route), so what is written reads back the same. Errors are *addr.Error.
//
// A control character is reported before any other fault: a CR, LF or NUL is
// the mark of an injection attempt (RFC 5321 §4.1.2) and the reason should
// say so even when an angle bracket comes first in the address.
func checkMailbox(a string) (string, error) {
	if i := strings.IndexFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		if _, err := addr.Check(a[i:]); err != nil { // addr's own rule text for that character
			var ae *addr.Error
			if errors.As(err, &ae) {
				return "", &addr.Error{Addr: a, Rule: ae.Rule}
			}
			return "", err
		}
	}
	mbox, err := addr.Check(a)
	if err != nil {
		return "", err
	}
	if again, err := addr.Check(mbox); err != nil || again != mbox {
		return "", &addr.Error{Addr: a, Rule: "malformed source route: a route remains after removing one (RFC 5321 §4.1.2, Appendix C)"}
	}
	return mbox, nil
}

// rcptMailbox is checkMailbox for a recipient read from a spool file or
// recorded by a run. A recipient with a control character, a space or an
// angle bracket is structural damage or an injection attempt: an error, and
// the file goes to bad/. One that only breaks the address grammar (no @, a
// malformed literal or source route, RFC 5321 §4.1.2) is kept as it is, so
// that a run fails that one recipient with 5.1.3 and delivers the others
// instead of holding back the whole message.
func rcptMailbox(a string) (string, error) {
	mbox, err := checkMailbox(a)
	if err == nil {
		return mbox, nil
	}
	if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' }) {
		return "", err
	}
	return a, nil
}

// rcptKey is the identity of a recipient for dropping duplicates: the local
// part as written (it may be case-sensitive, RFC 5321 §2.4) and the domain
// in lower-case A-label form, so "bob@A.TEST" and "bob@a.test." are one
// recipient and get one copy.
func rcptKey(mbox string) string {
	at := strings.LastIndexByte(mbox, '@')
	if at < 0 {
		return mbox
	}
	if d, err := addr.Domain(mbox); err == nil {
		return mbox[:at] + "@" + d
	}
	return mbox[:at] + "@" + strings.ToLower(mbox[at+1:])
}

// sanitizeReply turns a server reply into the one-line form stored in the
// file: every control character (CR, LF, NUL, HTAB, ...) becomes a space and
// surrounding spaces are trimmed.
func sanitizeReply(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Trim(s, " ")
}

// utcSecond returns t in UTC truncated to the second, or an error when the
// year cannot be written as four RFC 3339 digits.
func utcSecond(t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, nil
	}
	t = t.UTC().Truncate(time.Second)
	if t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("time %s is outside years 0000-9999 (RFC 3339 §5.6)", t)
	}
	return t, nil
}

// normalize checks env before it is written and returns the exact form that
// will be stored: mailboxes checked (source routes removed, duplicates
// dropped), replies sanitised and kept only for pending recipients, times in
// UTC seconds. needTo requires at least one pending recipient; otherwise at
// least one recipient, pending or failed, is required. Address errors are the
// *addr.Error from addr.Check, unwrapped.
func normalize(env Envelope, needTo bool) (Envelope, error) {
	var out Envelope
	var err error
	if env.UID != "" {
		if err := checkUID(env.UID); err != nil {
			return Envelope{}, fmt.Errorf("spool: envelope: %w", err)
		}
		out.UID = env.UID
	}
	if env.From != "" {
		if out.From, err = checkMailbox(env.From); err != nil {
			return Envelope{}, err
		}
	}
	seen := make(map[string]bool, len(env.To))
	for _, orig := range env.To {
		mbox, err := rcptMailbox(orig)
		if err != nil {
			return Envelope{}, err
		}
		if seen[rcptKey(mbox)] {
			continue
		}
		seen[rcptKey(mbox)] = true
		out.To = append(out.To, mbox)
		r, ok := env.Replies[orig]
		if !ok {
			r, ok = env.Replies[mbox]
		}
		if ok {
			if out.Replies == nil {
				out.Replies = make(map[string]string)
			}
			out.Replies[mbox] = sanitizeReply(r)
		}
	}
	for _, f := range env.Failed {
		mbox, err := rcptMailbox(f.Rcpt)
		if err != nil {
			return Envelope{}, err
		}
		if err := checkNotice(f.Notice); err != nil {
			return Envelope{}, err
		}
		out.Failed = append(out.Failed, Failure{Rcpt: mbox, Reply: sanitizeReply(f.Reply), Notice: f.Notice})
	}
	switch {
	case needTo && len(out.To) == 0:
		return Envelope{}, fmt.Errorf("spool: envelope has no pending recipient (To is empty)")
	case len(out.To) == 0 && len(out.Failed) == 0:
		return Envelope{}, fmt.Errorf("spool: envelope has no recipient (To and Failed are empty)")
	case env.Attempts < 0:
		return Envelope{}, fmt.Errorf("spool: envelope Attempts %d is negative", env.Attempts)
	}
	out.Attempts = env.Attempts
	if out.Arrival, err = utcSecond(env.Arrival); err != nil {
		return Envelope{}, fmt.Errorf("spool: envelope Arrival: %w", err)
	}
	if out.NextAttempt, err = utcSecond(env.NextAttempt); err != nil {
		return Envelope{}, fmt.Errorf("spool: envelope NextAttempt: %w", err)
	}
	if out.Warned, err = utcSecond(env.Warned); err != nil {
		return Envelope{}, fmt.Errorf("spool: envelope Warned: %w", err)
	}
	return out, nil
}

// formatEnvelope returns the envelope lines for env, LF-terminated, in the
// order From, To..., Id, Arrival, Attempts, Next-Attempt, Warned, Reply... (in To
// order), Failed.... Zero times and zero Attempts are left out; a Failed
// line starts with its notice token when it has one. env must come from
// normalize or parse; formatEnvelope does not check it.
func formatEnvelope(env Envelope) []byte {
	var b strings.Builder
	line := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	withText := func(mbox, text string) string {
		if text == "" {
			return "<" + mbox + ">"
		}
		return "<" + mbox + "> " + text
	}
	line(fieldFrom, "<"+env.From+">")
	for _, to := range env.To {
		line(fieldTo, "<"+to+">")
	}
	if env.UID != "" {
		line(fieldID, env.UID)
	}
	if !env.Arrival.IsZero() {
		line(fieldArrival, env.Arrival.UTC().Format(time.RFC3339))
	}
	if env.Attempts > 0 {
		line(fieldAttempts, strconv.Itoa(env.Attempts))
	}
	if !env.NextAttempt.IsZero() {
		line(fieldNext, env.NextAttempt.UTC().Format(time.RFC3339))
	}
	if !env.Warned.IsZero() {
		line(fieldWarned, env.Warned.UTC().Format(time.RFC3339))
	}
	for _, to := range env.To {
		if r, ok := env.Replies[to]; ok {
			line(fieldReply, withText(to, r))
		}
	}
	for _, f := range env.Failed {
		v := withText(f.Rcpt, f.Reply)
		if f.Notice != NoticeUnknown {
			v = string(f.Notice) + " " + v
		}
		line(fieldFailed, v)
	}
	return []byte(b.String())
}

// envEqual reports whether two envelopes hold the same values (times
// compared as instants, nil and empty collections alike).
func envEqual(a, b Envelope) bool {
	if a.UID != b.UID || a.From != b.From || a.Attempts != b.Attempts || !a.Arrival.Equal(b.Arrival) || !a.NextAttempt.Equal(b.NextAttempt) ||
		!a.Warned.Equal(b.Warned) ||
		len(a.To) != len(b.To) || len(a.Replies) != len(b.Replies) || len(a.Failed) != len(b.Failed) {
		return false
	}
	for i := range a.To {
		if a.To[i] != b.To[i] {
			return false
		}
	}
	for k, v := range a.Replies {
		if w, ok := b.Replies[k]; !ok || w != v {
			return false
		}
	}
	for i := range a.Failed {
		if a.Failed[i] != b.Failed[i] {
			return false
		}
	}
	return true
}

// checkNotice refuses a notice that is not one of the defined tokens.
func checkNotice(n Notice) error {
	switch n {
	case NoticeUnknown, NoticeBounced, NoticeNone:
		return nil
	}
	return fmt.Errorf("spool: failure notice %q is not %q or %q", string(n), NoticeBounced, NoticeNone)
}

// checkUID refuses an X-Envelope-Id value that is empty, longer than
// maxUID octets, or holds anything but letters, digits, ".", "_" and "-":
// it is written in journal lines and log lines as it is.
func checkUID(v string) error {
	if v == "" || len(v) > maxUID || strings.ContainsFunc(v, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'))
	}) {
		return fmt.Errorf("%q is not a message ID (1 to %d letters, digits, '.', '_' or '-')", v, maxUID)
	}
	return nil
}

// newUID returns a fresh random message UID: 128 bits in hex.
func newUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// fingerprint is the UID of a file without an X-Envelope-Id line: a hash
// of its size, its modification time in nanoseconds and the lines Scan
// read (lines: a checksum of the envelope lines or of a plain file's
// header block, see parse), which identifies it without reading it again.
// It leaves out the status change time, which a chmod, chown or chattr
// after a crash would change, making the journal's lines miss their
// message; sameMessage uses that time where it helps. Two such files have
// one fingerprint only if all of it is equal: a producer that rewrites a
// file in place under the same name with the same size and header within
// one tick of the file system's clock, or copies the same file with cp -p
// under the same name while a crash journal names the first copy, is the
// residual risk.
func fingerprint(size int64, mtime time.Time, lines lineSum) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], uint64(size))
	binary.BigEndian.PutUint64(b[8:], uint64(mtime.UnixNano()))
	binary.BigEndian.PutUint64(b[16:], lines.a)
	binary.BigEndian.PutUint64(b[24:], lines.b)
	sum := sha256.Sum256(b[:])
	return "fp-" + hex.EncodeToString(sum[:16])
}

// lineSum is a 128-bit checksum of the lines parse reads, for fingerprint:
// FNV-1a and FNV-1 (64 bits each, draft-eastlake-fnv) side by side. It
// tells a rewritten file from the one a journal line or a crash's copy is
// about, not a forgery from the real thing, and costs no allocation per
// scanned file (a SHA-256 of every envelope cost three).
type lineSum struct{ a, b uint64 }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func newLineSum() lineSum { return lineSum{fnvOffset, fnvOffset} }

func (s *lineSum) write(p []byte) {
	a, b := s.a, s.b
	for _, c := range p {
		a = (a ^ uint64(c)) * fnvPrime // FNV-1a
		b = b*fnvPrime ^ uint64(c)     // FNV-1
	}
	s.a, s.b = a, b
}
