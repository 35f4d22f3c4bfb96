package deliver

import (
	"context"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

// audit is one row of the classification table: a reply line as a server
// sends it, to a command, and what deliver makes of it.
type audit struct {
	cmd  string // the command it answers (mta.Cmd*)
	line string // the reply, one line as on the wire
	// outcome: "ok" (the class the command wants), "perm" or "temp"
	outcome string
	lost    bool   // the session cannot go on
	status  string // the status of the error ("" for ok)
	// tooMany: a RCPT refusal that asks for a new transaction rather than
	// refusing the recipient (RFC 5321 §4.5.3.1.10)
	tooMany bool
	config  bool // a configuration error: deferred, the run exits 78
	why     string
}

// The classification audit: one row per reply code class and per code RFC
// 5321 §4.2.2-§4.2.3 and §4.5.3.1 name (with RFC 7504's 521 and RFC 7505's
// 556), and the enhanced status subjects that change the meaning. The rule
// (errors.go): the class decides, 5yz permanent and 4yz temporary; 421
// also loses the session; a reply of a class the command does not want,
// outside 4yz and 5yz, is a temporary protocol error (4.5.0) that loses
// the session. The enhanced status code only refines: its class must be
// the reply's (RFC 2034 §4), else it is text.
var auditTable = []audit{
	// 2yz and 3yz where they are wanted.
	{cmd: mta.CmdRcpt, line: "211 System status", outcome: "ok", why: "2yz is positive completion (RFC 5321 §4.2.1); the class decides"},
	{cmd: mta.CmdRcpt, line: "214 Help message", outcome: "ok", why: "2yz, as 211"},
	{cmd: mta.CmdGreeting, line: "220 mx.b.test ESMTP", outcome: "ok", why: "service ready (RFC 5321 §4.2.3)"},
	{cmd: mta.CmdQuit, line: "221 2.0.0 bye", outcome: "ok", why: "closing after QUIT (RFC 5321 §4.1.1.10)"},
	{cmd: mta.CmdMail, line: "250 2.1.0 ok", outcome: "ok", why: "requested action completed"},
	{cmd: mta.CmdRcpt, line: "251 2.1.5 User not local; will forward", outcome: "ok", why: "accepted, forwarded (RFC 5321 §3.4)"},
	{cmd: mta.CmdRcpt, line: "252 2.1.5 Cannot VRFY user, but will accept", outcome: "ok", why: "accepted (RFC 5321 §3.5.3)"},
	{cmd: mta.CmdData, line: "354 End data with <CR><LF>.<CR><LF>", outcome: "ok", why: "start mail input (RFC 5321 §4.2.3)"},
	// A class the command does not want, outside 4yz/5yz: out of step.
	{cmd: mta.CmdRcpt, line: "354 go ahead", outcome: "temp", lost: true, status: "4.5.0", why: "a 354 to RCPT: the server is out of step (RFC 2920 §3.1)"},
	{cmd: mta.CmdData, line: "250 2.0.0 ok", outcome: "temp", lost: true, status: "4.5.0", why: "DATA wants 354; the session's state is unknown"},
	{cmd: mta.CmdEOD, line: "354 more", outcome: "temp", lost: true, status: "4.5.0", why: "the final dot wants 2yz; the message may or may not be taken"},
	// 4yz: temporary.
	{cmd: mta.CmdRcpt, line: "421 4.3.2 Service not available, closing channel", outcome: "temp", lost: true, status: "4.3.2", why: "the server closes the channel (RFC 5321 §3.8)"},
	{cmd: mta.CmdGreeting, line: "421 4.3.2 try later", outcome: "temp", lost: true, status: "4.3.2", why: "as any 421"},
	{cmd: mta.CmdRcpt, line: "450 4.2.1 Mailbox unavailable", outcome: "temp", status: "4.2.1", why: "mailbox busy: transient (RFC 5321 §4.2.3)"},
	{cmd: mta.CmdRcpt, line: "451 4.3.0 Local error in processing", outcome: "temp", status: "4.3.0", why: "transient"},
	{cmd: mta.CmdRcpt, line: "452 4.5.3 Too many recipients", outcome: "temp", status: "4.5.3", tooMany: true, why: "RFC 5321 §4.5.3.1.10: the rest in a new transaction"},
	{cmd: mta.CmdRcpt, line: "452 4.3.1 Insufficient system storage", outcome: "temp", status: "4.3.1", tooMany: true, why: "a 452 to RCPT is the too-many-recipients reply (§4.5.3.1.10); a lone one is deferred"},
	{cmd: mta.CmdMail, line: "452 4.3.1 Insufficient system storage", outcome: "temp", status: "4.3.1", why: "to MAIL: the whole message waits"},
	{cmd: mta.CmdMail, line: "455 4.5.4 Server unable to accommodate parameters", outcome: "temp", status: "4.5.4", why: "transient (RFC 5321 §4.2.3)"},
	{cmd: mta.CmdRcpt, line: "451 4.4.1 No answer from host", outcome: "temp", status: "4.4.1", why: "X.4.x network and routing: transient by its class"},
	{cmd: mta.CmdAuth, line: "454 4.7.0 Temporary authentication failure", outcome: "temp", status: "4.7.0", why: "X.7.x policy, 4yz: transient"},
	{cmd: mta.CmdRcpt, line: "450 5.1.1 mailbox unknown", outcome: "temp", status: "4.0.0", why: "a 5.x.x status on a 4yz reply is text (RFC 2034 §4): the code decides"},
	// 5yz: permanent.
	{cmd: mta.CmdRcpt, line: "500 5.5.2 Syntax error, command unrecognized", outcome: "perm", status: "5.5.2", why: "permanent negative completion"},
	{cmd: mta.CmdRcpt, line: "501 5.5.4 Syntax error in parameters", outcome: "perm", status: "5.5.4", why: "permanent"},
	{cmd: mta.CmdRcpt, line: "502 5.5.1 Command not implemented", outcome: "perm", status: "5.5.1", why: "permanent (to EHLO, HELO follows: open.go)"},
	{cmd: mta.CmdRcpt, line: "503 5.5.1 Bad sequence of commands", outcome: "perm", status: "5.5.1", why: "permanent"},
	{cmd: mta.CmdMail, line: "504 5.5.4 Command parameter not implemented", outcome: "perm", status: "5.5.4", why: "permanent"},
	{cmd: mta.CmdGreeting, line: "521 5.3.2 does not accept mail", outcome: "perm", status: "5.3.2", why: "RFC 7504: the host accepts no mail; Dial tries the next MX"},
	{cmd: mta.CmdMail, line: "530 5.7.0 Authentication required", outcome: "temp", status: "4.7.0", config: true, why: "RFC 4954 §6: our configuration lacks credentials; the mail waits"},
	{cmd: mta.CmdRcpt, line: "550 5.1.1 No such user", outcome: "perm", status: "5.1.1", why: "X.1.x addressing: the mailbox does not exist"},
	{cmd: mta.CmdRcpt, line: "550 5.7.1 Relaying denied", outcome: "perm", status: "5.7.1", why: "X.7.x policy, 5yz: refused for good"},
	{cmd: mta.CmdRcpt, line: "550 5.5.3 Too many recipients", outcome: "perm", status: "5.5.3", tooMany: true, why: "X.5.3: the transaction is full, not the recipient refused; a new transaction"},
	{cmd: mta.CmdRcpt, line: "550 4.2.2 Mailbox full", outcome: "perm", status: "5.0.0", why: "a 4.x.x status on a 5yz reply is text (mta.SplitStatus): the code decides"},
	{cmd: mta.CmdRcpt, line: "551 5.1.6 User not local", outcome: "perm", status: "5.1.6", why: "X.1.x addressing (RFC 5321 §3.4)"},
	{cmd: mta.CmdRcpt, line: "552 5.2.2 Mailbox full", outcome: "perm", status: "5.2.2", why: "X.2.2 names the mailbox: not the too-many-recipients case of §4.5.3.1.10"},
	{cmd: mta.CmdRcpt, line: "552 Too many recipients", outcome: "perm", status: "5.0.0", tooMany: true, why: "RFC 5321 §4.5.3.1.10: treat RFC 821's 552 to RCPT as 452"},
	{cmd: mta.CmdRcpt, line: "552 5.5.3 Too many recipients", outcome: "perm", status: "5.5.3", tooMany: true, why: "as 452 (§4.5.3.1.10), X.5.3 says so"},
	{cmd: mta.CmdEOD, line: "552 5.3.4 Message too big", outcome: "perm", status: "5.3.4", why: "exceeded storage allocation for the message (RFC 1870 §6.1)"},
	{cmd: mta.CmdRcpt, line: "553 5.1.3 Mailbox name not allowed", outcome: "perm", status: "5.1.3", why: "X.1.x addressing"},
	{cmd: mta.CmdGreeting, line: "554 5.7.1 No SMTP service here", outcome: "perm", status: "5.7.1", why: "RFC 5321 §3.1: refused at connection; Dial tries the next MX"},
	{cmd: mta.CmdEOD, line: "554 5.7.1 Message rejected as spam", outcome: "perm", status: "5.7.1", why: "X.7.x policy on the content"},
	{cmd: mta.CmdRcpt, line: "554 5.4.4 Unable to route", outcome: "perm", status: "5.4.4", why: "X.4.x network, but 5yz: the code decides"},
	{cmd: mta.CmdMail, line: "555 5.5.4 MAIL FROM parameters not recognized", outcome: "perm", status: "5.5.4", why: "RFC 5321 §4.2.3"},
	{cmd: mta.CmdRcpt, line: "556 5.1.10 Domain does not accept mail", outcome: "perm", status: "5.1.10", why: "RFC 7505 §4.2: null MX"},
	{cmd: mta.CmdRcpt, line: "550 no status at all", outcome: "perm", status: "5.0.0", why: "no enhanced status: the class's X.0.0"},
}

// wants is the reply class each command wants.
func wants(cmd string) int {
	if cmd == mta.CmdData {
		return 3
	}
	return 2
}

// parseLine reads a one-line reply as smtpclient does.
func parseLine(t *testing.T, line string) mta.Reply {
	t.Helper()
	code, last, text, ok := mta.ParseLine(line)
	if !ok || !last {
		t.Fatalf("%q is not a one-line reply", line)
	}
	status, rest := mta.SplitStatus(code, text)
	return mta.Reply{Code: code, Status: status, Lines: []string{rest}}
}

func TestClassificationAudit(t *testing.T) {
	for _, a := range auditTable {
		t.Run(a.cmd+" "+a.line[:3]+" "+a.status, func(t *testing.T) {
			e, lost := judge(a.cmd, wants(a.cmd), parseLine(t, a.line))
			if e != nil && (a.cmd == mta.CmdMail || a.cmd == mta.CmdRcpt) {
				e = authRequired(e) // as the transactions do (txn.go)
			}
			outcome := "ok"
			switch {
			case e == nil:
			case e.Permanent:
				outcome = "perm"
			default:
				outcome = "temp"
			}
			if outcome != a.outcome || lost != a.lost {
				t.Fatalf("%s %q: %s, lost %v; want %s, lost %v (%s)", a.cmd, a.line, outcome, lost, a.outcome, a.lost, a.why)
			}
			if e == nil {
				return
			}
			if e.Status != a.status || e.Config != a.config || e.Command != a.cmd {
				t.Errorf("%s %q: %v (config %v); want status %s, config %v (%s)", a.cmd, a.line, e, e.Config, a.status, a.config, a.why)
			}
			if a.cmd == mta.CmdRcpt && tooManyRecipients(e) != a.tooMany {
				t.Errorf("%s %q: too many recipients %v, want %v (%s)", a.cmd, a.line, !a.tooMany, a.tooMany, a.why)
			}
		})
	}
}

// A 552 or an X.5.3 refusal to RCPT is the transaction full, not the
// recipient refused (RFC 5321 §4.5.3.1.10): the recipient goes in a new
// transaction after the accepted ones got the message; alone in its
// transaction it is deferred, never bounced. A 552 5.2.2 (mailbox full)
// refuses its recipient.
func TestSendRcpt552(t *testing.T) {
	tests := []struct {
		reply string
		want  map[string]string
		datas int
	}{
		{"552 5.5.3 Too many recipients", map[string]string{"a@b.test": "sent", "x@b.test": "sent"}, 2},
		{"552 Too many recipients", map[string]string{"a@b.test": "sent", "x@b.test": "sent"}, 2},
		{"550 5.5.3 Too many recipients", map[string]string{"a@b.test": "sent", "x@b.test": "sent"}, 2},
		{"552 5.2.2 Mailbox full", map[string]string{"a@b.test": "sent", "x@b.test": "perm 552"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.reply, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				rcpts := 0
				f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
					if strings.HasPrefix(cmd, "MAIL") {
						rcpts = 0
					}
					if strings.HasPrefix(cmd, "RCPT") {
						if rcpts++; rcpts > 1 {
							return tc.reply // one recipient per transaction
						}
					}
					return ""
				}}
				startFake(t, "127.0.0.2", port, f)
				s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "x@b.test"}, text("x\n"), 2))
				if err != nil {
					t.Fatal(err)
				}
				wantOutcomes(t, rs, tc.want)
				if n := len(f.bodies()); n != tc.datas {
					t.Errorf("%d messages sent, want %d", n, tc.datas)
				}
			})
		})
	}
	// Alone in its transaction: deferred.
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "552 5.5.3 Too many recipients"
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"x@b.test"}, text("x\n"), 2))
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{"x@b.test": "temp 4.5.3"})
	})
}
