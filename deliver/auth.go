package deliver

import (
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
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
//     (mta.Error.Config), temporary: the mail is fine, the setup is not;
//   - 4yz (454 4.7.0 temporary authentication failure): temporary;
//   - anything else: an I/O error, the session is lost.
//
// inStep says whether the server answered the last command sent (other
// than with 421), or none was sent: then it waits for QUIT.
func authenticate(c *smtpclient.Client, a *Auth, st TLSState, relay string, o Options) (e *mta.Error, inStep bool) {
	if st.Version == "" && !a.AllowInsecure {
		why := "the connection has no TLS"
		if st.Note != "" {
			why += " (" + st.Note + ")"
		}
		return configError("4.7.0", mta.CmdAuth, "credentials not sent: "+why+
			"; use --tls encrypt or verify, or --allow-insecure-auth to send them in cleartext", nil), true
	}
	ext := c.Extensions()
	if !ext.Has("AUTH") {
		o.Logger.Debug("smtp relay offers no AUTH; sending without", "relay", relay)
		return nil, true
	}
	offered := strings.Fields(strings.ToUpper(ext.Params("AUTH")))
	var client sasl.Client
	var mech string
	switch {
	case slices.Contains(offered, sasl.Plain):
		mech, client = sasl.Plain, sasl.NewPlainClient("", a.Username, a.Password)
	case slices.Contains(offered, sasl.Login):
		mech, client = sasl.Login, &loginClient{user: a.Username, pass: a.Password}
	default:
		return configError("4.7.0", mta.CmdAuth, "the relay offers AUTH "+mta.OneLine(ext.Params("AUTH"))+"; mxflush speaks only "+
			strings.Join(a.mechanisms(), " and "), nil), true
	}
	r, err := c.Auth(client)
	switch {
	case errors.Is(err, smtpclient.ErrSASL):
		return configError("4.7.0", mta.CmdAuth, "the relay's AUTH "+mech+" prompt was not understood", nil), true
	case err != nil:
		return ioError(mta.CmdAuth, err), false
	case r.Class() == 2:
		return nil, true
	case r.Class() == 4:
		e := replyError(mta.CmdAuth, r)
		e.Msg = "authentication (" + mech + ") failed for now: " + e.Msg
		return e, r.Code != 421
	case r.Class() == 5:
		status := "4.7.0"
		if r.Code == 535 {
			status = "4.7.8" // RFC 4954 §6: credentials invalid
		}
		re := replyError(mta.CmdAuth, r)
		return configError(status, mta.CmdAuth, "the relay refused the credentials (AUTH "+mech+"): "+
			re.Reply()+"; check --auth-file or MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD", re), true
	}
	return replyError(mta.CmdAuth, r), false // a reply of no class AUTH knows: out of step
}

// authRequired turns a 530 reply (RFC 4954 §6: authentication required)
// into a configuration error, deferred and never bounced: the relay wants
// credentials that were not given, or not sent for lack of TLS. Other
// errors are returned as they are.
func authRequired(e *mta.Error) *mta.Error {
	if e.Code != 530 {
		return e
	}
	return configError("4.7.0", e.Command, "the relay requires authentication ("+e.Reply()+
		"); give credentials with --auth-file or MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD", e)
}
