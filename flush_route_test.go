package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/internal/testnet"
)

// writeTemp writes content to a new file in a temp dir and returns its path.
func writeTemp(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA makes a CA, a certificate for names signed by it, and the CA's
// PEM file for --tls-ca.
func testCA(t *testing.T, names ...string) (*testnet.CA, tls.Certificate, string) {
	t.Helper()
	ca, err := testnet.NewCA("mxflush e2e root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(names...)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert, writeTemp(t, "ca.pem", string(ca.PEM), 0o644)
}

// The README's CI example: a routes file sends every *.test message to one
// local test inbox. Domains that share the next hop share one batch and
// one connection; a message to two of them is one transaction; no MX is
// looked up for them. An exact rule beats the subdomain pattern.
func TestFlushRoutesFileCI(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.5"}, nil,
		"keep.test. MX 10 mx.keep.test.", "mx.keep.test. A 127.0.0.2",
		"a.test. MX 10 mx.keep.test.")
	routes := writeTemp(t, "routes", fmt.Sprintf("# CI: everything to the test inbox\n*.test smtp:[127.0.0.5]:%d\nkeep.test smtp:\n", w.port), 0o644)
	w.enqueue("alice@example.test", msg("one"), "x@a.test", "y@b.test")
	w.enqueue("alice@example.test", msg("two"), "z@c.sub.test")
	w.enqueue("alice@example.test", msg("three"), "k@keep.test")
	code, out, errs := w.flush("--routes", routes)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	inbox, mx := w.recv["127.0.0.5"], w.recv["127.0.0.2"]
	if inbox.Sessions() != 1 || len(inbox.Messages()) != 2 {
		t.Errorf("inbox: %d sessions, %d messages; want 1 session with 2 messages", inbox.Sessions(), len(inbox.Messages()))
	}
	if got := inbox.Messages(); len(got) > 0 && !slices.Equal(got[0].To, []string{"x@a.test", "y@b.test"}) {
		t.Errorf("a message to a.test and b.test: RCPT TO %v, want both in one transaction", got[0].To)
	}
	if got := mx.Messages(); len(got) != 1 || got[0].To[0] != "k@keep.test" {
		t.Errorf("keep.test by its MX: %v", got)
	}
	if n := w.dns.Queries("a.test", dns.TypeMX); n != 0 {
		t.Errorf("%d MX queries for a routed domain", n)
	}
	hop := fmt.Sprintf("smtp:[127.0.0.5]:%d", w.port)
	if !strings.Contains(out, hop) {
		t.Errorf("summary has no row for the hop %s:\n%s", hop, out)
	}
}

// --smarthost with a fallback list, STARTTLS verified against --tls-ca,
// and credentials from an auth file: the first relay is down, the second
// takes the mail over TLS after AUTH PLAIN. Then the same with a wrong
// password: exit 78, everything deferred, nothing bounced. The password
// shows in no output, no spool file, and never went in cleartext.
func TestFlushSmarthostAuth(t *testing.T) {
	const user, pass = "ci-robot", "Smart-h0st-pw!"
	_, cert, caFile := testCA(t, "relay.example.test", "127.0.0.5")
	w := newWorld(t, []string{"127.0.0.5"}, func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{TLS: testnet.ServerTLS(cert), AuthUsers: map[string]string{user: pass}, AuthRequired: true}
	})
	down := fmt.Sprintf("127.0.0.6:%d", w.port) // nothing listens there
	smarthost := down + fmt.Sprintf(",127.0.0.5:%d", w.port)
	for _, tt := range []struct {
		name, password string
		env            bool // from MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD, not a file
		wantCode       int
	}{
		{"right password", pass, false, 0},
		{"from the environment", pass, true, 0},
		{"wrong password", pass + "-old", false, 78},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--smarthost", smarthost, "--tls", "verify", "--tls-ca", caFile, "--json"}
			if tt.env {
				t.Setenv("MXFLUSH_AUTH_USER", user)
				t.Setenv("MXFLUSH_AUTH_PASSWORD", tt.password)
			} else {
				auth := writeTemp(t, "sasl_passwd", fmt.Sprintf("# smart host\n[127.0.0.5]:%d %s:%s\n", w.port, user, tt.password), 0o600)
				args = append(args, "--auth-file", auth)
			}
			before := len(r0(w).Messages())
			w.enqueue("alice@example.test", msg(tt.name), "bob@a.test", "carol@b.test")
			code, out, errs := w.flush(args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.wantCode, out, errs)
			}
			r := w.recv["127.0.0.5"]
			var sum struct {
				Domains []struct {
					Domain      string         `json:"domain"`
					Deferred    int            `json:"deferred"`
					Failed      int            `json:"failed"`
					TLS         map[string]int `json:"tls"`
					ConfigError string         `json:"config_error"`
				} `json:"domains"`
			}
			if err := json.Unmarshal([]byte(out), &sum); err != nil || len(sum.Domains) != 1 {
				t.Fatalf("JSON summary %q: %v", out, err)
			}
			row := sum.Domains[0]
			if tt.wantCode == 0 {
				if got := r.Messages()[before:]; len(got) != 1 || !got[0].TLS {
					t.Errorf("relay got %d messages (want 1, over TLS)", len(got))
				}
				if row.TLS["TLSv1.3:verified"] != 1 || !strings.Contains(errs, "tls=TLSv1.3:verified") {
					t.Errorf("TLS not reported: row %v\n%s", row.TLS, errs)
				}
			} else {
				if row.Deferred != 2 || row.Failed != 0 || !strings.Contains(row.ConfigError, "refused the credentials") {
					t.Errorf("row %+v: want 2 deferred, none failed, a config error", row)
				}
				if !strings.Contains(errs, "refused the credentials") || len(w.files("cur")) != 1 || len(w.files("failed")) != 0 {
					t.Errorf("want the message deferred to cur/ and the reason on stderr; cur %v failed %v\n%s", w.files("cur"), w.files("failed"), errs)
				}
				os.RemoveAll(filepath.Join(w.spool, "cur")) // next case starts clean
				os.Mkdir(filepath.Join(w.spool, "cur"), 0o700)
			}
			for _, h := range r.Hellos() {
				if h.Name != "relay.test" {
					t.Errorf("EHLO %q (TLS %v), want relay.test", h.Name, h.TLS)
				}
			}
			for _, a := range r.Auths() {
				if !a.TLS {
					t.Error("AUTH without TLS")
				}
			}
			for _, c := range r.Commands() {
				if strings.HasPrefix(c, "AUTH") {
					t.Errorf("AUTH in cleartext: %q", c)
				}
			}
			noSecret(t, tt.password, out, errs, w.spool)
		})
	}
}

func r0(w *world) *testnet.Receiver { return w.recv["127.0.0.5"] }

// By default credentials never go in cleartext: a relay without STARTTLS
// gets no AUTH and the run exits 78; --allow-insecure-auth sends them.
func TestFlushAuthNeverInCleartext(t *testing.T) {
	const user, pass = "ci-robot", "n0t-in-clear"
	for _, tt := range []struct {
		name  string
		extra []string
		code  int
	}{
		{"default", nil, 78},
		{"--allow-insecure-auth", []string{"--allow-insecure-auth"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.5"}, func(string) testnet.SMTPOptions {
				return testnet.SMTPOptions{AuthUsers: map[string]string{user: pass}, InsecureAuth: true, AuthRequired: true}
			})
			auth := writeTemp(t, "auth", fmt.Sprintf("127.0.0.5 %s:%s\n", user, pass), 0o600)
			w.enqueue("alice@example.test", msg("clear"), "bob@a.test")
			code, out, errs := w.flush(append([]string{"--smarthost", fmt.Sprintf("127.0.0.5:%d", w.port), "--auth-file", auth}, tt.extra...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out, errs)
			}
			sawAuth := slices.ContainsFunc(w.recv["127.0.0.5"].Commands(), func(c string) bool { return strings.HasPrefix(c, "AUTH") })
			if sawAuth != (tt.code == 0) {
				t.Errorf("AUTH in cleartext: %v, want %v", sawAuth, tt.code == 0)
			}
			if tt.code != 0 && !strings.Contains(errs, "credentials not sent") {
				t.Errorf("stderr does not say why:\n%s", errs)
			}
			if tt.code != 0 {
				noSecret(t, pass, out, errs, w.spool)
			}
		})
	}
}

// noSecret fails if the password, or its base64 forms, is in any output
// or any file under dir.
func noSecret(t *testing.T, pass string, outputs ...string) {
	t.Helper()
	dir := outputs[len(outputs)-1]
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			outputs = append(outputs, string(b))
		}
		return nil
	})
	b64 := base64.StdEncoding.EncodeToString
	for _, out := range outputs {
		for _, s := range []string{pass, b64([]byte(pass))} {
			if strings.Contains(out, s) {
				t.Errorf("the password shows (as %q) in:\n%s", s, out)
			}
		}
	}
}

// STARTTLS failing end to end: the MX offers it but no handshake can succeed.
// Under the default policy the mail goes in cleartext in the same run and
// the log says why; under encrypt it is deferred, never sent in cleartext.
func TestFlushSTARTTLSFails(t *testing.T) {
	_, cert, _ := testCA(t, "mx.a.test")
	broken := testnet.ServerTLS(cert)
	broken.MaxVersion = tls.VersionTLS11 // mxflush wants TLS 1.2 at least: every handshake fails
	for _, tt := range []struct {
		policy string
		code   int
	}{{"may", 0}, {"encrypt", 75}} {
		t.Run(tt.policy, func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.2"}, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{TLS: broken} },
				"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
			w.enqueue("alice@example.test", msg("c14"), "bob@a.test")
			code, out, errs := w.flush("--tls", tt.policy)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out, errs)
			}
			got := w.recv["127.0.0.2"].Messages()
			if tt.code == 0 {
				if len(got) != 1 || got[0].TLS {
					t.Fatalf("received %v; want the message once, in cleartext", got)
				}
				for _, want := range []string{"tls=none", "status=sent", "TLS failed, sent without TLS"} {
					if !strings.Contains(errs, want) {
						t.Errorf("log line lacks %q:\n%s", want, errs)
					}
				}
				if !strings.Contains(out, "a.test: tls: none (TLS failed, sent without TLS) x1") {
					t.Errorf("summary lacks the TLS note:\n%s", out)
				}
				return
			}
			if len(got) != 0 || len(w.files("cur")) != 1 || !strings.Contains(errs, "status=deferred") {
				t.Errorf("received %d; cur %v; want the message deferred\n%s", len(got), w.files("cur"), errs)
			}
		})
	}
}

// DANE end to end: the TLSA record of the MX, with the AD bit set by the
// (loopback) resolver, makes TLS required and pins the certificate; a
// record that does not match defers; without the AD bit it is ignored.
// So is an authenticated record of an MX host that an MX answer without
// the AD bit named (RFC 7672 §2.2.1): not even looked up.
func TestFlushDANE(t *testing.T) {
	ca, cert, _ := testCA(t, "mx.a.test")
	other, err := ca.Issue("mx.a.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		pin    tls.Certificate
		ad     bool // on the TLSA answer
		mxAD   bool // on the MX answer
		code   int
		logTLS string
	}{
		{"matching record, authenticated", cert, true, true, 0, "tls=TLSv1.3:dane"},
		{"record for another key, authenticated", other, true, true, 75, ""},
		{"record for another key, not authenticated", other, false, true, 0, "tls=TLSv1.3:unverified"},
		{"record for another key, MX answer not authenticated", other, true, false, 0, "tls=TLSv1.3:unverified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.2"}, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{TLS: testnet.ServerTLS(cert)} },
				"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
			owner := fmt.Sprintf("_%d._tcp.mx.a.test", w.port)
			line, err := testnet.TLSALine(owner, 3, 1, 1, tt.pin.Leaf)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.dns.Add(line); err != nil {
				t.Fatal(err)
			}
			w.dns.SetAD(owner, tt.ad)
			w.dns.SetAD("a.test", tt.mxAD)
			w.enqueue("alice@example.test", msg("dane"), "bob@a.test")
			code, out, errs := w.flush("--tls", "dane")
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out, errs)
			}
			if n := w.dns.Queries(owner, dns.TypeTLSA); tt.mxAD && n == 0 {
				t.Error("no TLSA query")
			} else if !tt.mxAD && n != 0 {
				t.Errorf("%d TLSA queries for the host of an MX answer without AD, want none", n)
			}
			if tt.logTLS != "" && !strings.Contains(errs, tt.logTLS) {
				t.Errorf("log lacks %q:\n%s", tt.logTLS, errs)
			}
			if tt.code != 0 && (len(w.recv["127.0.0.2"].Messages()) != 0 || !strings.Contains(errs, "DANE")) {
				t.Errorf("want nothing delivered and a DANE reason:\n%s", errs)
			}
		})
	}
}

// An auth file line with its fields swapped (USER:PASSWORD first) is a
// configuration error named by file and line: the password appears
// nowhere in the output, and nothing is sent.
func TestFlushAuthFileSwappedFieldsHidePassword(t *testing.T) {
	const pass = "Sw4pped-s3cret"
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.enqueue("alice@example.test", msg("swapped"), "bob@a.test")
	for _, line := range []string{
		"ci-robot:" + pass + " relay.example.test:587",
		"[ci-robot:" + pass + "] relay.example.test:587",
	} {
		auth := writeTemp(t, "sasl_passwd", "# relays\n"+line+"\n", 0o600)
		code, out, errs := w.flush("--auth-file", auth)
		if code != 78 || !strings.Contains(errs, auth+":2:") {
			t.Errorf("%q: exit %d, stderr %q; want 78 naming %s:2", line, code, errs, auth)
		}
		if strings.Contains(out+errs, pass) {
			t.Errorf("%q: the password is printed:\n%s%s", line, out, errs)
		}
	}
	if w.received() != 0 {
		t.Errorf("%d messages sent with a broken auth file", w.received())
	}
}
