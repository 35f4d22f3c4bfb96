package deliver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"
)

// Commands named in Error.Command.
const (
	cmdConnect  = "connect"
	cmdGreeting = "greeting"
	cmdEHLO     = "EHLO"
	cmdHELO     = "HELO"
	cmdSTARTTLS = "STARTTLS"
	cmdTLS      = "TLS"
	cmdAuth     = "AUTH"
	cmdMail     = "MAIL FROM"
	cmdRcpt     = "RCPT TO"
	cmdData     = "DATA"
	cmdEOD      = "end of data"
	cmdRset     = "RSET"
	cmdQuit     = "QUIT"
	cmdLocal    = "local"
)

// Error is a classified delivery failure, built at the package boundary from
// a server reply (*smtp.SMTPError), an I/O error, a timeout or a local
// decision. Permanent means the recipient must fail (5yz reply or a local
// rule that waiting cannot fix); otherwise the recipient is deferred. Errors
// that are not understood are temporary: deferring by mistake retries,
// bouncing by mistake loses mail.
type Error struct {
	Permanent bool
	Code      int    // SMTP reply code (RFC 5321 §4.2); 0 for I/O errors, timeouts and local decisions
	Status    string // enhanced status code (RFC 3463), e.g. "5.1.1"; X.0.0 when the reply had none
	Command   string // "connect", "greeting", "EHLO", "HELO", "STARTTLS", "TLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", "end of data", "RSET", "QUIT" or "local"
	Msg       string // server reply text (lines joined with "; ") or the local reason in plain words
	Err       error  // the cause, for errors.Is / errors.As; may be nil
	// Config marks a local configuration problem rather than a problem of
	// the mail: credentials refused (535), not sendable without TLS, or
	// missing (530); no common AUTH mechanism. It is always temporary (the
	// messages wait for a fixed configuration) and the run should exit 78
	// (EX_CONFIG).
	Config bool
	// OutOfOrder marks a session lost because the server answered a
	// pipelined group out of order (RFC 2920 §3.1 wants the replies in
	// the order of the commands): a reply of the wrong class, such as 354
	// to RCPT or 250 to DATA, or a 354 to DATA after a refused MAIL. The
	// caller should speak to that server without PIPELINING
	// (Options.NoPipelining). Always temporary.
	OutOfOrder bool

	// plainRetry: TLS failed during or after the handshake under TLSMay,
	// so the same address is tried again without STARTTLS (RFC 7435).
	plainRetry bool
	// heloRetry: EHLO got 500 or 502 and the server closed the connection
	// before HELO could follow, so the same address is tried again on a
	// new connection that starts with HELO (RFC 5321 §4.1.4).
	heloRetry bool
}

// Reply returns the reply in SMTP form, "550 5.1.1 No such user", or for an
// error without a reply code the status and reason, "4.4.2 connection lost".
func (e *Error) Reply() string {
	if e.Code != 0 {
		return strconv.Itoa(e.Code) + " " + e.Status + " " + e.Msg
	}
	return e.Status + " " + e.Msg
}

func (e *Error) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	return kind + ": " + e.Command + ": " + e.Reply()
}

func (e *Error) Unwrap() error { return e.Err }

// LostError is returned by Send when the session can no longer be used: a
// 421 reply (RFC 5321 §3.8), an I/O error, a timeout or a cancelled context.
// Every recipient of the message that had no final result yet got a
// temporary result. The caller should Close the session and dial again.
type LostError struct {
	Err *Error // why the session was lost
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
	de, ok := r.Err.(*Error)
	return ok && de == e.Err
}

// localError is a decision taken here, before or instead of a command.
func localError(permanent bool, status, msg string, cause error) *Error {
	return &Error{Permanent: permanent, Status: status, Command: cmdLocal, Msg: msg, Err: cause}
}

// replyError converts a server reply. Only 5yz is permanent (RFC 5321
// §4.2.1); an unexpected 2yz or 3yz is a temporary protocol error.
func replyError(cmd string, se *smtp.SMTPError) *Error {
	class := se.Code / 100
	e := &Error{
		Permanent: class == 5,
		Code:      se.Code,
		Command:   cmd,
		Msg:       oneLine(se.Message),
		Err:       se,
	}
	switch {
	case class != 4 && class != 5:
		e.Status = "4.5.0" // RFC 3463: other or undefined protocol status
	case se.EnhancedCode == smtp.NoEnhancedCode || se.EnhancedCode == smtp.EnhancedCodeNotSet:
		e.Status = strconv.Itoa(class) + ".0.0"
	default:
		c := se.EnhancedCode
		e.Status = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
	}
	return e
}

// classify turns an error from go-smtp (or the conn below it) into an
// *Error, and says whether the session is lost: a 421, a reply outside
// 4yz/5yz, and anything that is not a reply at all (I/O error, timeout,
// malformed reply) leave the connection in an unknown state.
func classify(cmd string, err error) (e *Error, lost bool) {
	var de *Error
	if errors.As(err, &de) {
		return de, false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		e = replyError(cmd, se)
		class := se.Code / 100
		return e, se.Code == 421 || (class != 4 && class != 5)
	}
	return ioError(cmd, err), true
}

// ioError is a failure without a reply: temporary, status 4.4.2 (RFC 3463
// "bad connection"), which covers timeouts too.
func ioError(cmd string, err error) *Error {
	return &Error{Status: "4.4.2", Command: cmd, Msg: describe(err), Err: err}
}

// describe puts a network error in plain words.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout: no progress within the configured time (RFC 5321 §4.5.3.2)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "connection reset by the server"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	return "connection error: " + err.Error()
}

// oneLine joins the lines of a multi-line reply with "; " and drops other
// control characters, so the text fits a log line or a spool field.
func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\r\n"), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "; ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
