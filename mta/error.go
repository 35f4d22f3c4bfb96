package mta

// Commands and steps named in Error.Command: the SMTP command a reply
// answered, or the step that failed without one.
const (
	CmdDNS      = "DNS"      // an MX, address or TLSA lookup
	CmdConnect  = "connect"  // the TCP connection
	CmdGreeting = "greeting" // the server's first reply
	CmdEHLO     = "EHLO"
	CmdHELO     = "HELO"
	CmdSTARTTLS = "STARTTLS"
	CmdTLS      = "TLS" // the handshake and certificate checks after STARTTLS
	CmdAuth     = "AUTH"
	CmdMail     = "MAIL FROM"
	CmdRcpt     = "RCPT TO"
	CmdData     = "DATA"
	CmdEOD      = "end of data" // the reply to the final "."
	CmdRset     = "RSET"
	CmdQuit     = "QUIT"
	CmdLocal    = "local" // a decision taken here, before or instead of a command
)

// Error is one classified failure. Permanent means the recipients it
// concerns fail (a DSN goes to the sender); otherwise they are deferred.
// Whoever builds an Error decides Permanent; anything not understood is
// temporary, since deferring by mistake retries and bouncing by mistake
// loses mail.
type Error struct {
	Permanent bool
	// Code is the server's reply code (RFC 5321 §4.2), or for a DNS
	// failure the code a DSN's diagnostic shows (556 null MX, RFC 7505
	// §4.2; 550; 451); 0 for I/O errors, timeouts and local decisions.
	Code    int
	Status  string // enhanced status code (RFC 3463), "5.1.1"; "X.0.0" when the reply had none
	Command string // one of the Cmd constants
	Target  string // the domain or host it concerns, when the caller cannot tell ("" otherwise)
	Msg     string // the reply's text on one line, or the reason in plain words
	Err     error  // the cause, for errors.Is and errors.As; may be nil
	// Config marks a local configuration fault rather than a fault of the
	// mail or the peer (credentials refused, no common AUTH mechanism,
	// TLS required but not possible by configuration): always temporary,
	// and the run exits 78 (EX_CONFIG).
	Config bool
	// OutOfOrder marks a session lost because the server answered a
	// pipelined group out of order (RFC 2920 §3.1): the next sessions to
	// that server go without PIPELINING. Always temporary.
	OutOfOrder bool
}

// Reply is the failure as a reply line: "550 5.1.1 No such user", or for
// an error without a reply code "4.4.2 connection lost".
func (e *Error) Reply() string { return Format(e.Code, e.Status, e.Msg) }

func (e *Error) Error() string {
	s := "temporary: "
	if e.Permanent {
		s = "permanent: "
	}
	if e.Target != "" {
		s += e.Target + ": "
	}
	return s + e.Command + ": " + e.Reply()
}

func (e *Error) Unwrap() error { return e.Err }
