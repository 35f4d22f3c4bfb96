package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

const (
	authUser = "ci-robot"
	authPass = "s3cret-Pa55-7f2b"
)

// secretForms are the password as it could leak: plain, and in the base64
// forms PLAIN and LOGIN put on the wire.
func secretForms(user, pass string) []string {
	b := base64.StdEncoding.EncodeToString
	return []string{pass, b([]byte(pass)), b([]byte("\x00" + user + "\x00" + pass))}
}

// SMTP AUTH (RFC 4954): PLAIN or LOGIN over TLS; never over cleartext
// unless allowed; a refusal is a configuration error, deferred; and the
// password shows up in no error, result or trace.
func TestAuth(t *testing.T) {
	p := newPKI(t)
	users := map[string]string{authUser: authPass}
	oldTLS := testnet.ServerTLS(p.good)
	oldTLS.MaxVersion = tls.VersionTLS11
	tests := []struct {
		name string
		srv  testnet.SMTPOptions
		mode TLSMode
		auth *Auth
		want string // "sent", or "config STATUS" from Dial, or "deferred-config" from Send
		mech string // the AUTH attempt the server saw ("" none); "!" marks a refused one
	}{
		{name: "PLAIN over STARTTLS", srv: testnet.SMTPOptions{TLS: testnet.ServerTLS(p.good), AuthUsers: users, AuthRequired: true},
			mode: TLSVerify, auth: &Auth{Username: authUser, Password: authPass}, want: "sent", mech: "PLAIN"},
		{name: "LOGIN when PLAIN is not offered", srv: testnet.SMTPOptions{TLS: testnet.ServerTLS(p.good), AuthUsers: users, AuthMechs: []string{"LOGIN"}, AuthRequired: true},
			mode: TLSEncrypt, auth: &Auth{Username: authUser, Password: authPass}, want: "sent", mech: "LOGIN"},
		{name: "535: wrong password", srv: testnet.SMTPOptions{TLS: testnet.ServerTLS(p.good), AuthUsers: users, AuthRequired: true},
			mode: TLSMay, auth: &Auth{Username: authUser, Password: authPass + "x"}, want: "config 4.7.8", mech: "!PLAIN"},
		{name: "no TLS offered: credentials kept", srv: testnet.SMTPOptions{AuthUsers: users, InsecureAuth: true, AuthRequired: true},
			mode: TLSMay, auth: &Auth{Username: authUser, Password: authPass}, want: "config 4.7.0"},
		{name: "TLS failed: credentials kept on the cleartext retry", srv: testnet.SMTPOptions{TLS: oldTLS, AuthUsers: users, InsecureAuth: true, AuthRequired: true},
			mode: TLSMay, auth: &Auth{Username: authUser, Password: authPass}, want: "config 4.7.0"},
		{name: "no TLS, --allow-insecure-auth", srv: testnet.SMTPOptions{AuthUsers: users, InsecureAuth: true, AuthRequired: true},
			mode: TLSMay, auth: &Auth{Username: authUser, Password: authPass, AllowInsecure: true}, want: "sent", mech: "PLAIN"},
		{name: "no AUTH offered: sent without", srv: testnet.SMTPOptions{TLS: testnet.ServerTLS(p.good)},
			mode: TLSMay, auth: &Auth{Username: authUser, Password: authPass}, want: "sent"},
		{name: "530 to MAIL without credentials", srv: testnet.SMTPOptions{TLS: testnet.ServerTLS(p.good), AuthUsers: users, AuthRequired: true},
			mode: TLSMay, want: "deferred-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			r := startReceiver(t, "127.0.0.2", port, tt.srv)
			o := tlsOpts(port, p, tt.mode)
			if tt.auth != nil {
				o.Auth = func(h string, port int) *Auth {
					if h != "mx.b.test" || port == 0 {
						t.Errorf("credentials asked for %s:%d", h, port)
					}
					return tt.auth
				}
			}
			var trace bytes.Buffer
			o.Debug = &trace
			var outputs []string
			s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
			if err != nil {
				outputs = append(outputs, err.Error(), fmt.Sprintf("%+v %#v", err, err))
			}
			switch code, isConfig := strings.CutPrefix(tt.want, "config "); {
			case isConfig:
				e := wantTemp(t, err, code)
				if !e.Config {
					t.Errorf("err %v: Config not set", e)
				}
			case err != nil:
				t.Fatalf("Dial: %v", err)
			default:
				rs := sendOne(t, s)
				s.Close()
				for _, r := range rs {
					outputs = append(outputs, r.Reply, fmt.Sprint(r.Err))
				}
				if tt.want == "sent" {
					wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
					break
				}
				var e *mta.Error
				if !errors.As(rs[0].Err, &e) || e.Permanent || !e.Config {
					t.Errorf("result %v: want a temporary configuration error", rs[0].Err)
				}
			}
			var seen []string
			for _, a := range r.Auths() {
				m := a.Mech
				if !a.OK {
					m = "!" + m
				}
				seen = append(seen, m)
				if !a.TLS && (tt.auth == nil || !tt.auth.AllowInsecure) {
					t.Errorf("AUTH %s went without TLS", a.Mech)
				}
			}
			if want := slices.DeleteFunc([]string{tt.mech}, func(s string) bool { return s == "" }); !slices.Equal(seen, want) {
				t.Errorf("AUTH attempts %q, want %q", seen, want)
			}
			for _, c := range r.Commands() {
				if strings.HasPrefix(strings.ToUpper(c), "AUTH") && (tt.auth == nil || !tt.auth.AllowInsecure) {
					t.Errorf("AUTH in cleartext: %q", c)
				}
			}
			outputs = append(outputs, trace.String(), fmt.Sprintf("%v %+v %#v", o, o, o), fmt.Sprint(tt.auth), fmt.Sprintf("%v %+v %#v", *authOrZero(tt.auth), tt.auth, tt.auth))
			for _, out := range outputs {
				pass := authPass
				if tt.auth != nil {
					pass = tt.auth.Password
				}
				for _, secret := range secretForms(authUser, pass) {
					if strings.Contains(out, secret) {
						t.Errorf("the password (as %q) shows in %q", secret, out)
					}
				}
			}
		})
	}
}

func authOrZero(a *Auth) *Auth {
	if a == nil {
		return &Auth{}
	}
	return a
}
