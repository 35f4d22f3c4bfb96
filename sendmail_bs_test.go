package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/addr"
)

// bsClient runs sendmail -bs in-process with args before "sendmail" and
// returns a go-smtp client speaking to it over a pair of pipes, and a
// function that ends stdin and returns the exit code and stderr.
func bsClient(t *testing.T, args ...string) (*smtp.Client, func() (int, string)) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		code := runGlobals(append(args, "sendmail", "-bs"), Globals{stdin: inR, stdout: outW, stderr: &errb,
			now: func() time.Time { return fixtureNow }})
		outW.Close()
		io.Copy(io.Discard, outR) // nothing more is read by a client after the end
		done <- code
	}()
	c := smtp.NewClient(newStdioConn(outR, inW))
	return c, func() (int, string) {
		inW.Close()
		return <-done, errb.String()
	}
}

// wantReply checks that err is the SMTP reply code with enhanced code enh.
func wantReply(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enh {
		t.Errorf("%s: %v; want %d %v", what, err, code, enh)
	}
}

// sendmail -bs serves SMTP on stdin and stdout with go-smtp: accepted
// messages go through the submission path (aliases, added fields); a bad
// recipient, a message over the size limit and a reserve shortfall get
// 5xx/4xx replies with enhanced codes and queue nothing; RSET, NOOP and
// QUIT work and the exit status is 0.
func TestSendmailBS(t *testing.T) {
	dir := t.TempDir()
	aliases := filepath.Join(dir, "aliases")
	os.WriteFile(aliases, []byte("root: ops@a.test\n"), 0o644)
	sp := filepath.Join(dir, "spool")
	c, end := bsClient(t, "--spool", sp, "--aliases", aliases, "--max-message-size", "1K")
	if err := c.Hello("app.test"); err != nil {
		t.Fatal(err)
	}
	if size, ok := c.MaxMessageSize(); !ok || size != 1024 {
		t.Errorf("SIZE %d %v, want 1024 advertised", size, ok)
	}
	if err := c.Mail("app@example.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("root@origin.test", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "RCPT of a bad address", c.Rcpt("bob@-bad-.test", nil), 553, smtp.EnhancedCode{5, 1, 3})
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: hello\r\n\r\n.leading dot\r\nbody\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	// Over the size limit: 552 5.3.4, nothing queued.
	c.Mail("app@example.test", nil)
	c.Rcpt("x@b.test", nil)
	w, _ = c.Data()
	io.WriteString(w, "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20))
	wantReply(t, "DATA over the limit", w.Close(), 552, smtp.EnhancedCode{5, 3, 4})
	if err := c.Reset(); err != nil {
		t.Error(err)
	}
	if err := c.Noop(); err != nil {
		t.Error(err)
	}
	if err := c.Quit(); err != nil {
		t.Error(err)
	}
	if code, errs := end(); code != 0 {
		t.Errorf("exit %d: %s", code, errs)
	}
	m, msg := queued(t, sp)
	if m.From != "app@example.test" || !reflect.DeepEqual(m.To, []string{"ops@a.test"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	for _, want := range []string{"Date: ", "Message-ID: <", "From: <app@example.test>\r\n", "Subject: hello\r\n\r\n.leading dot\r\nbody\r\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in the stored message:\n%q", want, msg)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(sp, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files", len(ents))
	}
}

// Too little free space: MAIL gets 452 4.3.1 (RFC 3463 "mail system
// full"), and the client can still QUIT.
func TestSendmailBSMinFree(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	c, end := bsClient(t, "--spool", sp, "--min-free", "8000000G")
	if err := c.Hello("app.test"); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "MAIL", c.Mail("app@example.test", nil), 452, smtp.EnhancedCode{4, 3, 1})
	c.Quit()
	if code, errs := end(); code != 0 {
		t.Errorf("exit %d: %s", code, errs)
	}
	nothingQueued(t, sp)
}

// symfonyAutoload is where Debian's php-symfony-mailer puts its autoloader.
const symfonyAutoload = "/usr/share/php/Symfony/Component/Mailer/autoload.php"

// The real client: Symfony Mailer's SendmailTransport in -bs mode (Debian's
// php-cli and php-symfony-mailer 5.4) against the built binary. The
// message is queued with Bcc in the envelope and not in the message; one
// over the size limit makes Symfony throw with our 552 5.3.4.
func TestSendmailBSSymfony(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php not installed (apt-get install php-cli php-symfony-mailer): Symfony's sendmail -bs client not tested")
	}
	if _, err := os.Stat(symfonyAutoload); err != nil {
		t.Skipf("Symfony Mailer not installed (apt-get install php-symfony-mailer): %v", err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "php", "symfony_bs.php"))
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(t.TempDir(), "spool")
	send := func(lines int) (string, error) {
		command := binary(t) + " --spool " + sp + " --max-message-size 4K sendmail -bs"
		out, err := exec.Command(php, script, command, symfonyAutoload, strconv.Itoa(lines)).CombinedOutput()
		return string(out), err
	}
	if out, err := send(0); err != nil || out != "sent\n" {
		t.Fatalf("php: %v\n%s", err, out)
	}
	m, msg := queued(t, sp)
	if m.From != "app@example.test" || !reflect.DeepEqual(m.To, []string{"user@a.test", "hidden@b.test"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	if strings.Contains(msg, "hidden") || !strings.Contains(msg, "\nSubject: Symfony -bs\r\n") || !strings.Contains(msg, "\r\n\r\nhello from symfony\r\n.dot line\r\n") || strings.Count(msg, "Date: ") != 1 {
		t.Errorf("stored message:\n%q", msg)
	}
	out, err := send(100)
	if err == nil || !strings.Contains(out, "552") || !strings.Contains(out, "5.3.4") {
		t.Errorf("a message over the limit: %v, %q; want Symfony to report our 552 5.3.4", err, out)
	}
	if ents, _ := os.ReadDir(filepath.Join(sp, "new")); len(ents) != 1 {
		t.Errorf("new/ holds %d files, want only the first message", len(ents))
	}
}

// Each kind of refusal gets its reply code and enhanced code (RFC 3463).
func TestReplyFor(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		enh  smtp.EnhancedCode
	}{
		{exitf(65, "%w: refused", &tooBigError{max: 1024}), 552, smtp.EnhancedCode{5, 3, 4}},
		{exitf(73, "%w", smtp.ErrDataTooLarge), 552, smtp.EnhancedCode{5, 3, 4}},
		{exitf(65, "recipient: %w", &addr.Error{Addr: "x@-.test", Rule: "bad"}), 553, smtp.EnhancedCode{5, 1, 3}},
		{exitf(65, "empty message on stdin"), 554, smtp.EnhancedCode{5, 6, 0}},
		{exitf(75, "less than --min-free"), 452, smtp.EnhancedCode{4, 3, 1}},
		{exitf(78, "aliases file x:1: loop"), 451, smtp.EnhancedCode{4, 3, 5}},
		{exitf(73, "spool: permission denied"), 451, smtp.EnhancedCode{4, 3, 0}},
		{errors.New("anything else"), 451, smtp.EnhancedCode{4, 3, 0}},
	} {
		r := replyFor(tc.err)
		if r.Code != tc.code || r.EnhancedCode != tc.enh || strings.ContainsAny(r.Message, "\r\n") {
			t.Errorf("replyFor(%v) = %d %v %q, want %d %v", tc.err, r.Code, r.EnhancedCode, r.Message, tc.code, tc.enh)
		}
	}
}

// sendmail -bs takes lines ended by LF alone, as a terminal or a script
// writes them (Postfix's does too): the message is queued. It used to wait
// for a CRLF "." that never came, and lose the message with exit 0.
func TestSendmailBSBareLF(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	w := &world{t: t}
	script := "EHLO a.test\nMAIL FROM:<d@example.test>\nRCPT TO:<a@a.test>\nDATA\nSubject: x\n\nhi\n.\nQUIT\n"
	code, out, errs := w.run(script, "--spool", sp, "sendmail", "-bs")
	if code != 0 || !strings.Contains(out, "250 2.0.0 OK: queued") || !strings.Contains(out, "221 ") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	ents, _ := os.ReadDir(filepath.Join(sp, "new"))
	if len(ents) != 1 {
		t.Fatalf("new/ has %d messages, want 1", len(ents))
	}
}

// The LF-to-CRLF conversion leaves CRLF as it is and the counted octets of
// a BDAT chunk (RFC 3030) unchanged.
func TestCRLFReader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"EHLO a\nQUIT\n", "EHLO a\r\nQUIT\r\n"},
		{"EHLO a\r\nDATA\r\nx\n.\r\n", "EHLO a\r\nDATA\r\nx\r\n.\r\n"},
		{"BDAT 4 LAST\na\nb\nQUIT\n", "BDAT 4 LAST\r\na\nb\nQUIT\r\n"},
		// In DATA, a line that reads "BDAT 3" is text, converted.
		{"DATA\nBDAT 3\nx\n.\n", "DATA\r\nBDAT 3\r\nx\r\n.\r\n"},
	} {
		got, err := io.ReadAll(&crlfReader{r: iotest.OneByteReader(strings.NewReader(tc.in))})
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
}
