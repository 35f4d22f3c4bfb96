package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
)

// defaultSpool is the spool of the sendmail interface when neither --spool
// nor MXFLUSH_SPOOL names one: programs that call sendmail pass neither.
const defaultSpool = "/var/spool/mxflush"

// SendmailCmd is `mxflush sendmail ...`, also run when the binary is
// invoked as "sendmail" (a symlink): the sendmail(8) command line that
// cron, git send-email and PHP's mail() use. Everything after "sendmail"
// is sendmail's options, parsed by parseSendmail.
type SendmailCmd struct {
	Args []string `arg:"" optional:"" passthrough:"" help:"sendmail options and recipients: -t -i -oi -f ADDR -F NAME -bm -bp -q --."`
}

// Run queues the message on stdin (-bm), lists the queue (-bp) or flushes
// it once (-q). A queued message gets a Date and a Message-ID field when it
// has none (RFC 5322 §3.6), and a From field when it has none, all with
// the domain of MXFLUSH_HELO or this host's name; a recipient without "@"
// (a local user name) gets "@" and that domain. On success it prints
// nothing, as sendmail does. Exit codes as enqueue: 64 bad option or no
// recipient, 65 bad address or message, 73/74 spool errors.
func (c *SendmailCmd) Run(g *Globals) error {
	o, err := parseSendmail(c.Args)
	if err != nil {
		return exitf(report.ExUsage, "%v", err)
	}
	helo := sendmailDomain()
	switch o.mode {
	case modeList:
		return (&QueueCmd{}).Run(g)
	case modeFlush:
		if code := runGlobals([]string{"--spool", g.Spool, "flush", "--helo", helo}, *g); code != 0 {
			return &exitError{code: code, err: fmt.Errorf("")}
		}
		return nil
	}
	raw, err := io.ReadAll(g.stdin)
	if err != nil {
		return exitf(report.ExIOErr, "reading the message from stdin: %v", err)
	}
	if o.from == nil {
		if hdr := header(raw); hdr == nil || (hdr.Get("From") == "" && hdr.Get("Sender") == "") {
			sender := localUser() + "@" + helo
			o.from = &sender
		}
	}
	raw = addFields(raw, o, helo, g.now())
	for i, r := range o.rcpts {
		if !strings.Contains(r, "@") { // a local name, as Debian cron passes: qualified like Postfix's $myorigin
			o.rcpts[i] = r + "@" + helo
		}
	}
	e := &EnqueueCmd{From: o.from, Headers: o.headers, Rcpts: o.rcpts}
	quiet := *g
	quiet.stdin, quiet.stdout = bytes.NewReader(raw), io.Discard
	return e.Run(&quiet)
}

// header parses raw's header section, or returns nil.
func header(raw []byte) mail.Header {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	return m.Header
}

// addFields puts the fields RFC 5322 §3.6 requires and the message lacks at
// the top of its header section, in its line ending style: Date (the
// origination date, now), Message-ID (<UTC-time.random@domain>, §3.6.4) and
// From (the envelope sender, with -F's name). A message whose header
// section cannot be parsed is left as it is (enqueue then refuses it).
func addFields(raw []byte, o sendmailOpts, domain string, now time.Time) []byte {
	hdr := header(raw)
	if hdr == nil {
		return raw
	}
	eol := "\n"
	if i := bytes.IndexByte(raw, '\n'); i > 0 && raw[i-1] == '\r' {
		eol = "\r\n"
	}
	var add bytes.Buffer
	if hdr.Get("Date") == "" {
		add.WriteString("Date: " + now.Format(time.RFC1123Z) + eol)
	}
	if hdr.Get("Message-ID") == "" {
		var b [8]byte
		rand.Read(b[:])
		add.WriteString("Message-ID: <" + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:]) + "@" + domain + ">" + eol)
	}
	if hdr.Get("From") == "" && o.from != nil && *o.from != "" && *o.from != "<>" {
		from := (&mail.Address{Name: o.fullName, Address: *o.from}).String()
		add.WriteString("From: " + from + eol)
	}
	return append(add.Bytes(), raw...)
}

// sendmailDomain is the domain of added fields and of a default sender:
// MXFLUSH_HELO, else this host's name, else "localhost".
func sendmailDomain() string {
	for _, d := range []string{os.Getenv("MXFLUSH_HELO"), hostname()} {
		if d == "" {
			continue
		}
		if _, err := addr.Domain("postmaster@" + d); err == nil {
			return d
		}
	}
	return "localhost"
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// localUser is the invoking user's login name, for a default sender.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "nobody"
}

// sendmailArgs turns the arguments of a binary invoked as "sendmail" into
// mxflush's: the sendmail command, on MXFLUSH_SPOOL or defaultSpool.
func sendmailArgs(argv0 string, args []string, getenv func(string) string) ([]string, bool) {
	name := filepath.Base(argv0)
	if name != "sendmail" && name != "mailq" {
		return args, false
	}
	out := []string{}
	if getenv("MXFLUSH_SPOOL") == "" {
		out = append(out, "--spool", defaultSpool)
	}
	out = append(out, "sendmail")
	if name == "mailq" {
		return append(out, "-bp"), true
	}
	return append(out, args...), true
}
