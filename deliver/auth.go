package deliver

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Auth holds the credentials for SMTP AUTH (RFC 4954). The password goes
// nowhere but onto the wire, and there only inside TLS unless
// AllowInsecure: String, GoString and LogValue hide both fields, no error
// quotes them, and the protocol trace (Options.Debug) leaves them out.
type Auth struct {
	Username      string
	Password      string
	AllowInsecure bool // send them on a connection without TLS (--allow-insecure-auth)
}

func (a Auth) String() string        { return "SMTP AUTH credentials (hidden)" }
func (a Auth) GoString() string      { return a.String() }
func (a Auth) LogValue() slog.Value  { return slog.StringValue(a.String()) }
func (a *Auth) mechanisms() []string { return []string{"PLAIN", "LOGIN"} }

var errLoginChallenge = errors.New("unexpected AUTH LOGIN challenge")

// loginClient is the LOGIN mechanism (draft-murchison-sasl-login) as a
// go-sasl client. go-sasl's own sends the user name as an initial response
// and then accepts only "Password:"; this one waits for the server's
// "Username:" prompt, which every LOGIN server sends.
type loginClient struct{ user, pass string }

func (l *loginClient) Start() (string, []byte, error) { return sasl.Login, nil, nil }

func (l *loginClient) Next(challenge []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(string(challenge))) {
	case "username:", "user name", "username":
		return []byte(l.user), nil
	case "password:", "password":
		return []byte(l.pass), nil
	}
	return nil, errLoginChallenge
}

// authenticate runs AUTH after EHLO, with PLAIN when the server offers it,
// else LOGIN (RFC 4954 §4). A server that offers no AUTH is used without
// (it may relay for our address). Failures:
//
//   - no TLS and not AllowInsecure, no common mechanism, or a 5yz reply
//     (535 5.7.8 bad credentials, 534, 538, 530): a configuration error
//     (Error.Config), temporary: the mail is fine, the setup is not;
//   - 4yz (454 4.7.0 temporary authentication failure): temporary;
//   - anything else: an I/O error, the session is lost.
func authenticate(c *smtp.Client, a *Auth, st TLSState, relay string, o Options) *Error {
	if st.Version == "" && !a.AllowInsecure {
		why := "the connection has no TLS"
		if st.Note != "" {
			why += " (" + st.Note + ")"
		}
		return configError("4.7.0", cmdAuth, "credentials not sent: "+why+
			"; use --tls encrypt or verify, or --allow-insecure-auth to send them in cleartext", nil)
	}
	ok, params := c.Extension("AUTH")
	if !ok {
		o.Logger.Debug("smtp relay offers no AUTH; sending without", "relay", relay)
		return nil
	}
	offered := strings.Fields(strings.ToUpper(params))
	var client sasl.Client
	var mech string
	switch {
	case slices.Contains(offered, sasl.Plain):
		mech, client = sasl.Plain, sasl.NewPlainClient("", a.Username, a.Password)
	case slices.Contains(offered, sasl.Login):
		mech, client = sasl.Login, &loginClient{user: a.Username, pass: a.Password}
	default:
		return configError("4.7.0", cmdAuth, "the relay offers AUTH "+oneLine(params)+"; mxflush speaks only "+
			strings.Join(a.mechanisms(), " and "), nil)
	}
	// go-smtp's trace would show the credentials (base64 is not secret).
	dw := c.DebugWriter
	c.DebugWriter = nil
	err := c.Auth(client)
	c.DebugWriter = dw
	if o.Debug != nil {
		_, _ = io.WriteString(o.Debug, "AUTH "+mech+" (credentials not traced): "+authOutcome(err)+"\r\n")
	}
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se) && se.Code/100 == 4:
		e := replyError(cmdAuth, se)
		e.Msg = "authentication (" + mech + ") failed for now: " + e.Msg
		return e
	case errors.As(err, &se):
		status := "4.7.0"
		if se.Code == 535 {
			status = "4.7.8" // RFC 4954 §6: credentials invalid
		}
		return configError(status, cmdAuth, "the relay refused the credentials (AUTH "+mech+"): "+
			replyError(cmdAuth, se).Reply()+"; check --auth-file or MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD", se)
	case errors.Is(err, errLoginChallenge):
		return configError("4.7.0", cmdAuth, "the relay's AUTH LOGIN prompt was not understood", nil)
	}
	return ioError(cmdAuth, err)
}

func authOutcome(err error) string {
	if err == nil {
		return "accepted"
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return "refused " + replyError(cmdAuth, se).Reply()
	}
	return "failed"
}

// authRequired turns a 530 reply (RFC 4954 §6: authentication required)
// into a configuration error, deferred and never bounced: the relay wants
// credentials that were not given, or not sent for lack of TLS. Other
// errors are returned as they are.
func authRequired(e *Error) *Error {
	if e.Code != 530 {
		return e
	}
	return configError("4.7.0", e.Command, "the relay requires authentication ("+e.Reply()+
		"); give credentials with --auth-file or MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD", e)
}

// configError is a local configuration problem: temporary (the messages
// wait), and Config set so the run can exit 78 (EX_CONFIG).
func configError(status, cmd, msg string, cause error) *Error {
	return &Error{Config: true, Status: status, Command: cmd, Msg: msg, Err: cause}
}
