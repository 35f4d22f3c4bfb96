package deliver

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
)

// LostError is returned by Send when the session can no longer be used: a
// 421 reply (RFC 5321 §3.8), an I/O error, a timeout or a cancelled context.
// Every recipient of the message that had no final result yet got a
// temporary result. The caller should Close the session and dial again.
type LostError struct {
	Err *mta.Error // why the session was lost
	// Safe is true when the final "." of the current message was never sent
	// (or no message was in progress), so resending it on a new connection
	// cannot deliver it twice (RFC 5321 §4.1.1.4, RFC 1047). False means the
	// server may have accepted the message without our seeing its reply.
	Safe bool
}

func (e *LostError) Error() string {
	s := "session lost"
	if !e.Safe {
		s += " after the end of data was sent"
	}
	return s + ": " + e.Err.Error()
}

func (e *LostError) Unwrap() error { return e.Err }

// Unresolved reports whether r, one of the results of the Send that
// returned e, is a recipient that had no final result when the session was
// lost: its Err is e.Err itself. The others are final (refused, or
// delivered in an earlier transaction of the message after a 452, RFC 5321
// §4.5.3.1.10) and must not be sent again.
func (e *LostError) Unresolved(r Result) bool {
	de, ok := r.Err.(*mta.Error)
	return ok && de == e.Err
}

// localError is a decision taken here, before or instead of a command.
func localError(permanent bool, status, msg string, cause error) *mta.Error {
	return &mta.Error{Permanent: permanent, Status: status, Command: mta.CmdLocal, Msg: msg, Err: cause}
}

// configError is a local configuration problem: temporary (the messages
// wait), and Config set so the run can exit 78 (EX_CONFIG).
func configError(status, cmd, msg string, cause error) *mta.Error {
	return &mta.Error{Config: true, Status: status, Command: cmd, Msg: msg, Err: cause}
}

// replyError classifies a server reply to cmd that was not the one
// wanted. Only 5yz is permanent (RFC 5321 §4.2.1: permanent negative
// completion); 4yz is temporary; a 2yz or 3yz where another class was
// wanted is a temporary protocol error, 4.5.0 (RFC 3463 §3.6: other or
// undefined protocol status). The enhanced status code is the reply's
// when its class matches (mta.SplitStatus), else the class's X.0.0.
func replyError(cmd string, r mta.Reply) *mta.Error {
	class := r.Class()
	e := &mta.Error{Permanent: class == 5, Code: r.Code, Command: cmd, Msg: r.Text(), Status: r.Status}
	switch {
	case class != 4 && class != 5:
		e.Status = "4.5.0"
	case e.Status == "":
		e.Status = strconv.Itoa(class) + ".0.0"
	}
	return e
}

// judge turns a reply into nil (its class is want: 2 for 2yz, 3 for 354),
// or an *mta.Error, and says whether the session is lost: a 421 (RFC 5321
// §3.8: the server closes the channel) or a reply outside 4yz/5yz that
// was not wanted leaves the server's state unknown.
func judge(cmd string, want int, r mta.Reply) (e *mta.Error, lost bool) {
	if r.Class() == want {
		return nil, false
	}
	e = replyError(cmd, r)
	class := r.Class()
	return e, r.Code == 421 || (class != 4 && class != 5)
}

// tooManyRecipients reports whether a refused RCPT means the transaction
// is full rather than the recipient refused, so that the recipient goes in
// a new transaction: a 452 (RFC 5321 §4.5.3.1.10), any reply whose
// enhanced status is X.5.3 (RFC 3463 §3.6: too many recipients), and a
// 552 without a specific status (none, or X.0.0), which RFC 821 listed
// for this case and §4.5.3.1.10 has clients treat as a 452. A 552 5.2.2
// (mailbox full, RFC 3463 §3.3) is about the recipient: refused.
func tooManyRecipients(e *mta.Error) bool {
	switch {
	case e.Code == 452:
		return true
	case e.Code/100 == 4 || e.Code/100 == 5:
		if len(e.Status) == 5 && e.Status[1:] == ".5.3" {
			return true
		}
		return e.Code == 552 && len(e.Status) == 5 && e.Status[1:] == ".0.0"
	}
	return false
}

// deferred is a too-many-recipients refusal for a recipient that gets no
// new transaction (none was accepted in this one, so the next would start
// with it again): it waits for a later run, whatever the reply's class. A
// 5yz becomes a temporary error of its own, as Dial makes of a 5yz it does
// not take as final, that quotes the reply.
func deferred(e *mta.Error) *mta.Error {
	if !e.Permanent {
		return e
	}
	return &mta.Error{Status: "4" + e.Status[1:], Command: e.Command, Err: e,
		Msg: "too many recipients in one transaction (RFC 5321 §4.5.3.1.10), deferred: " + e.Reply()}
}

// ioError is a failure without a reply: temporary, status 4.4.2 (RFC 3463
// "bad connection"), which covers timeouts and malformed replies too.
func ioError(cmd string, err error) *mta.Error {
	return &mta.Error{Status: "4.4.2", Command: cmd, Msg: describe(err), Err: err}
}

// describe puts a network error in plain words.
func describe(err error) string {
	var ne net.Error
	var ioe *smtpclient.IOError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout: no progress within the configured time (RFC 5321 §4.5.3.2)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "connection reset by the server"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ioe):
		err = ioe.Err
	}
	return "connection error: " + err.Error()
}
