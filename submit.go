package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/alias"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// headerLimit bounds the header section a submission holds in memory (the
// rest of the message is streamed to disk). Postfix's header_size_limit
// (100 KiB) bounds one field and cuts it; here the whole section is
// bounded and a longer one is refused (exit 65), since a cut could drop a
// Bcc field that must not be sent.
const headerLimit = 1 << 20

// submission is one message taken into the spool by enqueue, sendmail or
// an SMTP client of sendmail -bs.
type submission struct {
	from     *string  // envelope sender given (-f, MAIL FROM); nil: from the message's Sender or From
	rcpts    []string // recipients given (arguments, RCPT TO)
	headers  bool     // -t: recipients from To, Cc and Bcc too, and Bcc removed
	fullName string   // -F: the display name of an added From field
	complete bool     // sendmail: add a missing Date, Message-ID and From, and default the sender to the user; enqueue does this only for a bare body
}

// submitter is what the submissions of one run share: the settings, the
// aliases read once, the invoking user.
type submitter struct {
	g       *Globals
	aliases *alias.Map // nil: no aliases
	user    string     // login name, for a default sender
}

// newSubmitter checks the origin and the admin address and reads the
// aliases file. Errors are exit 78 (EX_CONFIG) naming the file or the
// setting.
func newSubmitter(g *Globals) (*submitter, error) {
	s := &submitter{g: g, user: localUser()}
	if err := g.setgid.capLimits(g, defaultConfig); err != nil {
		return nil, err
	}
	if !validDomain(g.Origin) {
		return nil, exitf(report.ExConfig, "--origin %q is not a domain name or address literal (RFC 5321 §4.1.2)", g.Origin)
	}
	if g.AdminAddress != "" {
		a, err := addr.Check(g.AdminAddress)
		if err != nil {
			return nil, exitf(report.ExConfig, "--admin-address: %w (a full address: local names and @%s are what it catches)", err, g.Origin)
		}
		g.AdminAddress = a
	}
	if g.Aliases == "" {
		return s, nil
	}
	f, err := os.Open(g.Aliases)
	if errors.Is(err, fs.ErrNotExist) && g.Aliases == defaultAliases {
		return s, nil
	}
	if err != nil {
		return nil, exitf(report.ExConfig, "aliases file: %w", err)
	}
	defer f.Close()
	if s.aliases, err = alias.Parse(g.Aliases, f); err != nil {
		return nil, exitf(report.ExConfig, "aliases file %w", err)
	}
	return s, nil
}

// submit reads one message from in and deposits it. Only the header
// section is held in memory; the body streams to the spool through a
// reader that fails once the message passes --max-message-size, so an
// oversized message leaves nothing behind. The envelope: the sender given
// or taken from the message, the recipients given and (with -t) those of
// To, Cc and Bcc; each goes through resolve. Input whose first line is no
// header field is a bare body (spool.ReadHeader); it gets From, Date,
// Message-ID and, without -t, To from the recipients (RFC 5322 §3.6).
// Errors are *exitError: 64 no recipient, 65 a bad address or message or
// one too big, 75 too little free space, 78 an aliases problem, and
// deposit's.
func (s *submitter) submit(sub submission, in io.Reader) (string, error) {
	br := bufio.NewReaderSize(in, 64<<10)
	h, err := spool.ReadHeader(br, headerLimit)
	if err != nil {
		var pe *spool.ParseError
		if errors.As(err, &pe) {
			return "", exitf(report.ExDataErr, "the message's header section is longer than %d octets (the most mxflush holds in memory): refused, nothing queued", headerLimit)
		}
		return "", exitf(report.ExIOErr, "reading the message: %w", err)
	}
	more, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", exitf(report.ExIOErr, "reading the message: %w", err)
	}
	bare := len(h.Fields) == 0
	if bare && len(bytes.TrimSpace(more)) == 0 && len(more) < 4096 {
		return "", exitf(report.ExDataErr, "empty message on stdin")
	}

	env := spool.Envelope{}
	if env.From, err = s.sender(sub, h); err != nil {
		return "", err
	}
	given := make([]string, 0, len(sub.rcpts))
	for _, r := range sub.rcpts {
		given = append(given, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(r), "<"), ">"))
	}
	all := given
	if sub.headers {
		for _, f := range h.Fields {
			if !strings.EqualFold(f.Name, "To") && !strings.EqualFold(f.Name, "Cc") && !strings.EqualFold(f.Name, "Bcc") {
				continue
			}
			list, err := addr.List(f.Value)
			if err != nil {
				return "", exitf(report.ExDataErr, "%s header field (line %d): %w", f.Name, f.Line, err)
			}
			all = append(all, list...)
		}
	}
	if len(all) == 0 {
		return "", exitf(report.ExUsage, "no recipients: give them as arguments or use -t")
	}
	if env.To, err = s.resolve(all); err != nil {
		return "", err
	}

	eol := lineEnd(h.Raw, more)
	raw := h.Rewrite(func(f spool.HeaderField) ([]byte, bool) {
		// A Bcc field is never sent (RFC 5322 §3.6.3): removed by -t, and
		// by sendmail always, as Postfix's does, so that one written by
		// a program that lists its recipients itself does not show the
		// blind copies to every recipient. enqueue without -t keeps the
		// message byte for byte.
		if (sub.headers || sub.complete) && strings.EqualFold(f.Name, "Bcc") {
			return nil, true
		}
		if v, ok := s.qualifyField(f); ok {
			return []byte(f.Name + ":" + v + eol), true
		}
		return nil, false
	})
	var add bytes.Buffer
	if sub.complete || bare {
		s.addFields(&add, h, sub, env.From, given, bare, eol)
	}
	var sep []byte
	if !h.Ended && len(more) > 0 { // a body line where a field or the empty line was due (RFC 5322 §2.1)
		sep = []byte(eol)
	}
	msg := io.MultiReader(bytes.NewReader(add.Bytes()), bytes.NewReader(raw), bytes.NewReader(sep), br)

	if err := checkFree(s.g); err != nil {
		return "", err
	}
	id, err := deposit(s.g, env, newSizeLimit(msg, int64(s.g.MaxMessageSize)))
	var tb *tooBigError
	if errors.As(err, &tb) {
		return "", exitf(report.ExDataErr, "%w: refused, nothing queued", tb)
	}
	return id, err
}

// sender is the envelope sender: the one given, else the message's Sender
// or From, else (sendmail, a bare body) the invoking user; a name without
// a domain is qualified with the origin. "" is the null sender.
func (s *submitter) sender(sub submission, h *spool.Header) (string, error) {
	var from string
	if sub.from != nil {
		from = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(*sub.from), "<"), ">")
		if from == "" {
			return "", nil
		}
	} else {
		for _, field := range []string{"Sender", "From"} {
			v := h.Get(field)
			if v == "" {
				continue
			}
			list, err := addr.List(v)
			if err != nil {
				return "", exitf(report.ExDataErr, "%s header field: %w", field, err)
			}
			if len(list) > 0 {
				from = list[0]
				break
			}
		}
		if from == "" {
			if !sub.complete && len(h.Fields) > 0 {
				return "", exitf(report.ExDataErr, "no sender: give -f SENDER, or a From header field in the message")
			}
			from = s.user
		}
	}
	from = s.qualify(from)
	a, err := addr.Check(from)
	if err != nil {
		return "", exitf(report.ExDataErr, "sender: %w", err)
	}
	return a, nil
}

// qualify gives an address without a domain the origin, as Postfix's
// myorigin (append_at_myorigin).
func (s *submitter) qualify(a string) string {
	if a != "" && !strings.Contains(a, "@") {
		return a + "@" + s.g.Origin
	}
	return a
}

// addressFields are the header fields that hold addresses (RFC 5322
// §3.6.2, §3.6.3, §3.6.6).
var addressFields = []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Bcc"}

// qualifyField returns the value of an address field with each address
// that has no domain qualified where it stands ("From: root (Cron Daemon)"
// becomes "From: root@ORIGIN (Cron Daemon)"), as Postfix rewrites the
// headers of local submissions, so that the message does not go out with
// an address no receiver can answer. The value is unfolded. ok is false
// when nothing changes (or the list does not parse: left as it is).
func (s *submitter) qualifyField(f spool.HeaderField) (string, bool) {
	if !slices.ContainsFunc(addressFields, func(n string) bool { return strings.EqualFold(n, f.Name) }) {
		return "", false
	}
	ms, err := addr.Mailboxes(f.Value)
	if err != nil {
		return "", false
	}
	v, changed := f.Value, false
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; !strings.Contains(m.Addr, "@") {
			v, changed = v[:m.End]+"@"+s.g.Origin+v[m.End:], true
		}
	}
	return v, changed
}

// local reports whether a is a local name the aliases and the admin
// address apply to, and which: a name without a domain, or one at the
// origin or at "localhost" (nullmailer's adminaddr takes both).
func (s *submitter) local(a string) (string, bool) {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return a, true
	}
	d := strings.TrimSuffix(a[at+1:], ".")
	if strings.EqualFold(d, s.g.Origin) || strings.EqualFold(d, "localhost") {
		return a[:at], true
	}
	return "", false
}

// resolve turns the recipients into envelope recipients: a local name
// goes through the aliases (recursively), then, when it has no alias,
// to the admin address, and only then is qualified with the origin.
// Every result is checked (addr.Check). An aliases problem is exit 78, a
// bad address 65.
func (s *submitter) resolve(rcpts []string) ([]string, error) {
	var out []string
	for _, r := range rcpts {
		exp, err := s.aliases.Expand(r, s.local)
		if err != nil {
			return nil, exitf(report.ExConfig, "aliases file %w", err)
		}
		for _, a := range exp {
			if _, ok := s.local(a); ok && s.g.AdminAddress != "" {
				a = s.g.AdminAddress
			}
			mbox, err := addr.Check(s.qualify(a))
			if err != nil {
				if a != r {
					return nil, exitf(report.ExDataErr, "recipient %s (from the aliases): %w", r, err)
				}
				return nil, exitf(report.ExDataErr, "recipient: %w", err)
			}
			out = append(out, mbox)
		}
	}
	return out, nil
}

// addFields writes the fields RFC 5322 §3.6 requires that the message
// lacks: Date (now), Message-ID (<UTC-time.random@origin>, §3.6.4), From
// (the envelope sender, with -F's name), and for a bare body without -t,
// To (the recipients given, qualified).
func (s *submitter) addFields(w *bytes.Buffer, h *spool.Header, sub submission, from string, given []string, bare bool, eol string) {
	now := s.g.now()
	if !h.Has("Date") {
		w.WriteString("Date: " + now.Format(time.RFC1123Z) + eol)
	}
	if !h.Has("Message-ID") {
		var b [8]byte
		rand.Read(b[:])
		w.WriteString("Message-ID: <" + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:]) + "@" + s.g.Origin + ">" + eol)
	}
	if !h.Has("From") && from != "" {
		w.WriteString("From: " + (&mail.Address{Name: sub.fullName, Address: from}).String() + eol)
	}
	if bare && !sub.headers && len(given) > 0 {
		to := make([]string, len(given))
		for i, r := range given {
			to[i] = s.qualify(r)
		}
		w.WriteString("To: " + strings.Join(to, ", ") + eol)
	}
}

// lineEnd is the message's line ending: that of its first line.
func lineEnd(header, body []byte) string {
	b := header
	if len(b) == 0 {
		b = body
	}
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// checkFree refuses a submission when the spool's file system has less
// free space than --min-free (Postfix's queue_minfree): exit 75, the
// caller may try again later, and the flush keeps room for its state
// changes.
func checkFree(g *Globals) error {
	if g.MinFree == nil || *g.MinFree <= 0 {
		return nil
	}
	free, err := freeSpace(g.Spool)
	if err != nil {
		return exitf(report.ExIOErr, "the spool's free space: %w", err)
	}
	if free < int64(*g.MinFree) {
		return exitf(report.ExTempFail, "the spool's file system (%s) has %s free, less than --min-free %s: nothing queued, try again later", g.Spool, byteSize(free), *g.MinFree)
	}
	return nil
}

// tooBigError is a message past --max-message-size.
type tooBigError struct{ max byteSize }

func (e *tooBigError) Error() string {
	return fmt.Sprintf("the message is larger than --max-message-size %s (as stored, with the fields mxflush adds)", e.max)
}

// sizeLimit reads r and fails with *tooBigError once more than max octets
// came through (max 0: no limit).
type sizeLimit struct {
	r    io.Reader
	left int64
	max  int64
}

func newSizeLimit(r io.Reader, max int64) io.Reader {
	if max <= 0 {
		return r
	}
	return &sizeLimit{r: r, left: max, max: max}
}

func (l *sizeLimit) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one octet more than allowed tells an exact fit from an overflow
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, &tooBigError{max: byteSize(l.max)}
	}
	return n, err
}
