package deliver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

// Every path that ends a session still in step before any mail sends QUIT
// before closing (RFC 5321 §4.1.1.10): a TLS policy that needs STARTTLS
// where the server does not offer it, refuses it or refuses EHLO, a
// refused EHLO or HELO, refused or unsent credentials. A 421 (RFC 5321
// §3.8: the server closes) gets no QUIT. The transcripts are the commands
// as the server read them.
func TestQuitAfterRefusal(t *testing.T) {
	noTLS := "250-fake.b.test\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"
	withTLS := "250-fake.b.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
	withAuth := "250-fake.b.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
	unusable := func(context.Context, string, int) ([]TLSA, bool, error) {
		return []TLSA{{Usage: 1, Selector: 1, MatchingType: 1, Data: []byte{1}}}, true, nil
	}
	tests := []struct {
		name    string
		mode    TLSMode
		dane    bool   // TLSDANE with only unusable TLSA records: TLS required
		auth    *Auth  // credentials for the host
		ehlo    string // EHLO reply
		replies map[string]string
		status  string   // of Dial's error
		want    []string // transcript
	}{
		{name: "encrypt, STARTTLS not offered", mode: TLSEncrypt, ehlo: noTLS, status: "4.7.4",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "verify, STARTTLS not offered", mode: TLSVerify, ehlo: noTLS, status: "4.7.4",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "dane, STARTTLS not offered", mode: TLSDANE, dane: true, ehlo: noTLS, status: "4.7.4",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "encrypt, STARTTLS refused", mode: TLSEncrypt, ehlo: withTLS,
			replies: map[string]string{"STARTTLS": "454 4.7.0 TLS not available"}, status: "4.7.0",
			want: []string{"EHLO relay.a.test", "STARTTLS", "QUIT"}},
		{name: "encrypt, EHLO refused", mode: TLSEncrypt,
			replies: map[string]string{"EHLO relay.a.test": "550 5.7.1 go away"}, status: "4.7.4",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "encrypt, 421 to EHLO: no QUIT", mode: TLSEncrypt,
			replies: map[string]string{"EHLO relay.a.test": "421 4.3.2 shutting down\r\n<close>"}, status: "4.7.4",
			want: []string{"EHLO relay.a.test"}},
		{name: "encrypt, 421 to STARTTLS: no QUIT", mode: TLSEncrypt, ehlo: withTLS,
			replies: map[string]string{"STARTTLS": "421 4.3.2 shutting down\r\n<close>"}, status: "4.3.2",
			want: []string{"EHLO relay.a.test", "STARTTLS"}},
		{name: "may, EHLO refused", mode: TLSMay,
			replies: map[string]string{"EHLO relay.a.test": "550 5.7.1 go away"}, status: "4.7.1",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "none, EHLO refused", mode: TLSNone,
			replies: map[string]string{"EHLO relay.a.test": "554 5.7.1 go away"}, status: "4.7.1",
			want: []string{"EHLO relay.a.test", "QUIT"}},
		{name: "none, 421 to EHLO: no QUIT", mode: TLSNone,
			replies: map[string]string{"EHLO relay.a.test": "421 4.3.2 shutting down\r\n<close>"}, status: "4.3.2",
			want: []string{"EHLO relay.a.test"}},
		{name: "credentials refused", mode: TLSNone, ehlo: withAuth,
			auth:    &Auth{Username: "u", Password: "p", AllowInsecure: true},
			replies: map[string]string{"AUTH PLAIN AHUAcA==": "535 5.7.8 bad credentials"}, status: "4.7.8",
			// A final 535 ends the exchange: no "*", which only
			// answers a 334 challenge (RFC 4954 §4).
			want: []string{"EHLO relay.a.test", "AUTH PLAIN AHUAcA==", "QUIT"}},
		{name: "credentials not sent without TLS", mode: TLSMay, ehlo: withAuth,
			auth: &Auth{Username: "u", Password: "p"}, status: "4.7.0",
			want: []string{"EHLO relay.a.test", "QUIT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{reply: func(cmd string) string { return tc.replies[cmd] }}
			if tc.ehlo != "" {
				f.ehlo = []string{tc.ehlo}
			}
			startFake(t, "127.0.0.2", port, f)
			o := opts(port)
			o.TLS.Mode = tc.mode
			if tc.dane {
				o.TLS.LookupTLSA = unusable
			}
			if tc.auth != nil {
				o.Auth = func(string, int) *Auth { return tc.auth }
			}
			s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
			if err == nil {
				s.Close()
				t.Fatalf("Dial succeeded, want an error %s", tc.status)
			}
			if e := wantError(t, err); !strings.HasPrefix(e.Status, tc.status) {
				t.Errorf("error %v, want status %s", e, tc.status)
			}
			wantTranscript(t, f, tc.want)
		})
	}
}

// After EHLO was refused with 500 and the connection closed, the HELO
// fallback's new session gets QUIT when HELO is refused too.
func TestQuitAfterHELORefused(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{reply: func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "500 5.5.1 unknown command\r\n<close>"
		case strings.HasPrefix(cmd, "HELO"):
			return "550 5.7.1 not you either"
		}
		return ""
	}}
	startFake(t, "127.0.0.2", port, f)
	if s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, opts(port)); err == nil {
		s.Close()
		t.Fatal("Dial succeeded, want HELO's 550")
	}
	wantTranscript(t, f, []string{"EHLO relay.a.test", "HELO relay.a.test", "QUIT"})
}

func wantError(t testing.TB, err error) *mta.Error {
	t.Helper()
	var e *mta.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *mta.Error", err)
	}
	return e
}
