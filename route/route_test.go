package route

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

const routesFile = `
# CI: every .test domain to the local test inbox
*.test            smtp:[127.0.0.1]:1025 tls=none
example.com       smtp:[relay.example.net]:587 tls=verify
.example.com      smtp:[relay.example.net]:587 tls=verify
shop.example.com  smtp:
mx.example.org    smtp:relay.example.org:2525
b.example.org     smtps:[127.0.0.9]:465,[127.0.0.10]
*                 smtp: tls=encrypt
`

func table(t *testing.T, c Config) *Table {
	t.Helper()
	if c.Resolver == nil {
		c.Resolver = &mx.Resolver{Server: "127.0.0.1:1"}
	}
	tab, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestHop(t *testing.T) {
	rules, err := ParseRoutes(strings.NewReader(routesFile), "routes")
	if err != nil {
		t.Fatal(err)
	}
	smart, err := ParseSmarthost("smart.example.net:587,[127.0.0.5]")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		smarthost bool
		domain    string
		key       string
		mode      deliver.TLSMode
		implicit  bool
	}{
		{"subdomain pattern", false, "a.test", "smtp:[127.0.0.1]:1025 tls=none", deliver.TLSNone, false},
		{"deep subdomain", false, "x.y.test", "smtp:[127.0.0.1]:1025 tls=none", deliver.TLSNone, false},
		{"exact", false, "example.com", "smtp:[relay.example.net]:587 tls=verify", deliver.TLSVerify, false},
		{"subdomain of example.com", false, "eu.example.com", "smtp:[relay.example.net]:587 tls=verify", deliver.TLSVerify, false},
		{"exact beats the parent pattern", false, "shop.example.com", "shop.example.com", deliver.TLSMay, false},
		{"MX of another name", false, "mx.example.org", "smtp:relay.example.org:2525", deliver.TLSMay, false},
		{"implicit TLS and fallback list", false, "b.example.org", "smtps:[127.0.0.9]:465,[127.0.0.10]", deliver.TLSMay, true},
		{"star: own MX, its policy", false, "other.net", "other.net", deliver.TLSEncrypt, false},
		{"star beats the smart host", true, "other.net", "other.net", deliver.TLSEncrypt, false},
		{"address literal takes star", false, "[192.0.2.1]", "[192.0.2.1]", deliver.TLSEncrypt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Rules: rules, Port: 25}
			if tt.smarthost {
				c.Smarthost = &smart
			}
			tab := table(t, c)
			key := tab.Hop(tt.domain)
			if key != tt.key {
				t.Errorf("Hop(%s) = %q, want %q", tt.domain, key, tt.key)
			}
			o := tab.Options(key, deliver.Options{Helo: "relay.test"})
			if o.TLS.Mode != tt.mode || o.TLS.Implicit != tt.implicit || o.Helo != "relay.test" {
				t.Errorf("Options: TLS %v implicit %v, want %v %v", o.TLS.Mode, o.TLS.Implicit, tt.mode, tt.implicit)
			}
		})
	}
	// Without rules: the smart host for everything; without either: MX.
	tab := table(t, Config{Smarthost: &smart})
	if k := tab.Hop("a.test"); k != "smtp:[smart.example.net]:587,[127.0.0.5]" {
		t.Errorf("smart host key %q", k)
	}
	if k := table(t, Config{}).Hop("a.test"); k != "a.test" {
		t.Errorf("no routes: key %q, want the domain", k)
	}
}

// conns=N caps a rule's sessions; a domain without a rule has no cap of
// its own, and a relay's key answers with its rule's cap.
func TestHopConns(t *testing.T) {
	rules, err := ParseRoutes(strings.NewReader("slow.test smtp: conns=2\nrelayed.test smtp:[127.0.0.5] conns=1\n"), "routes")
	if err != nil {
		t.Fatal(err)
	}
	tab := table(t, Config{Rules: rules, Port: 25})
	for _, c := range []struct {
		domain string
		want   int
	}{{"slow.test", 2}, {"relayed.test", 1}, {"other.test", 0}} {
		if got := tab.Conns(tab.Hop(c.domain)); got != c.want {
			t.Errorf("%s: conns %d, want %d", c.domain, got, c.want)
		}
	}
}

// bind=ADDR gives a hop its own source address; other hops keep --bind's.
func TestHopBind(t *testing.T) {
	rules, err := ParseRoutes(strings.NewReader("bulk.test smtp: bind=127.0.0.9\n* smtp:\n"), "routes")
	if err != nil {
		t.Fatal(err)
	}
	tab := table(t, Config{Rules: rules, Port: 25})
	base := deliver.Options{Helo: "relay.test", Bind: netip.MustParseAddr("127.0.0.8")}
	if got := tab.Options(tab.Hop("bulk.test"), base).Bind; got != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("bulk.test: bind %v, want 127.0.0.9 from its rule", got)
	}
	if got := tab.Options(tab.Hop("other.test"), base).Bind; got != base.Bind {
		t.Errorf("other.test: bind %v, want --bind's %v", got, base.Bind)
	}
}

func TestParseRoutesErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"example.com", "want PATTERN NEXTHOP"},
		{"example.com relay.example.net", "want smtp:"},
		{"example.com smtp:[relay.example.net", "no closing bracket"},
		{"example.com smtp:[relay.example.net]:99999", "port must be"},
		{"example.com smtp:[relay.example.net] tls=paranoid", "want none, may"},
		{"example.com smtp:[relay.example.net] auth=yes", "unknown option"},
		{"example.com smtp:[relay.example.net] bind=relay.example.net", "want an IP address"},
		{"example.com smtp: conns=0", "conns=\"0\": want a number of sessions"},
		{"example.com smtp: conns=2 conns=3", "option conns= given twice"},
		{"example.com smtp: conns=many", "conns=\"many\": want a number of sessions"},
		{"exa mple.com", "want smtp:"},
		{"[1.2.3.4] smtp:", "not a domain name"},
		{"a.test smtp:\na.test smtp:[127.0.0.1]", "already has a rule on line 1"},
	}
	for _, tt := range tests {
		_, err := ParseRoutes(strings.NewReader(tt.line), "r")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "r:") {
			t.Errorf("%q: err %v, want r:N: ...%s...", tt.line, err, tt.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	rules, err := ParseRoutes(strings.NewReader("a.test smtp:[127.0.0.1]:1025 tls=none\nb.test smtp: tls=dane\n"), "r")
	if err != nil {
		t.Fatal(err)
	}
	creds := credsFile(t, 0o600, "[127.0.0.1]:1025 u:p\n")
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"dane without a named resolver", Config{Rules: rules[1:]}, "needs --dns"},
		{"default dane without a named resolver", Config{TLS: deliver.TLSPolicy{Mode: deliver.TLSDANE}}, "needs --dns"},
		{"credentials over none", Config{Rules: rules[:1], Creds: creds, Port: 25}, "would go without TLS"},
		{"implicit with none", Config{TLS: deliver.TLSPolicy{Mode: deliver.TLSNone, Implicit: true}}, "implicit TLS"},
	}
	for _, tt := range tests {
		tt.c.Resolver = &mx.Resolver{Server: "127.0.0.1:1"}
		if _, err := New(tt.c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	ok := Config{Rules: rules, Creds: creds, Port: 25, TrustAD: true, AllowInsecureAuth: true, Resolver: &mx.Resolver{Server: "127.0.0.1:1"}}
	if _, err := New(ok); err != nil {
		t.Errorf("with --dns and --allow-insecure-auth: %v", err)
	}
}

func credsFile(t *testing.T, mode os.FileMode, content string) *Credentials {
	t.Helper()
	c, _, err := LoadCredentials(writeFile(t, mode, content), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, mode os.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Credentials: by host and port, then host; the environment's only for the
// smart host; none for a domain's own MX; a warning for a readable file;
// errors that never quote a line.
func TestCredentials(t *testing.T) {
	const file = "# relays\n[relay.example.net]:587 alice:pa:ss word\nrelay.example.net bob:other\n127.0.0.1:1025 ci:x\n"
	env := map[string]string{EnvAuthUser: "envuser", EnvAuthPassword: "envpass"}
	c, warn, err := LoadCredentials(writeFile(t, 0o644, file), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "mode 0644") {
		t.Errorf("warnings %q, want one about mode 0644", warn)
	}
	if _, warn, _ := LoadCredentials(writeFile(t, 0o600, file), func(string) string { return "" }); len(warn) != 0 {
		t.Errorf("mode 0600: warnings %q", warn)
	}
	smart, _ := ParseSmarthost("[relay.example.net]:587,smart.test:2525")
	rules, _ := ParseRoutes(strings.NewReader("a.test smtp:[127.0.0.1]:1025\n"), "r")
	tab := table(t, Config{Rules: rules, Smarthost: &smart, Creds: c, Port: 25})
	tests := []struct {
		domain, host string
		port         int
		want         string // "user:pass" or ""
	}{
		{"x.test", "relay.example.net", 587, "alice:pa:ss word"},
		{"x.test", "relay.example.net", 25, "bob:other"},
		{"x.test", "smart.test", 2525, "envuser:envpass"},
		{"a.test", "127.0.0.1", 1025, "ci:x"},
		{"a.test", "127.0.0.2", 1025, ""}, // a route, not the smart host: no environment credentials
	}
	for _, tt := range tests {
		o := tab.Options(tab.Hop(tt.domain), deliver.Options{})
		got := ""
		if o.Auth != nil {
			if a := o.Auth(tt.host, tt.port); a != nil {
				got = a.Username + ":" + a.Password
			}
		}
		if got != tt.want {
			t.Errorf("%s via %s:%d: credentials %q, want %q", tt.domain, tt.host, tt.port, got, tt.want)
		}
	}
	own := table(t, Config{Creds: c}).Options("relay.example.net", deliver.Options{})
	if own.Auth != nil {
		t.Error("credentials offered to a domain's own MX hosts")
	}

	for _, bad := range []struct{ content, want string }{
		{"relay.test secretpw\n", ":1: want HOST[:PORT] USER:PASSWORD"},
		{"relay.test\n", ":1: want HOST"},
		{"relay.test a:b\nrelay.test c:secretpw\n", ":2: a second entry"},
		// Fields swapped: the password is where the host should be.
		{"alice:secretpw relay.test\n", ":1: want HOST"},
		{"alice:secretpw relay.test:587\n", ":1: the first field is not a HOST[:PORT]"},
		{"[alice:secretpw] relay.test:587\n", ":1: the first field is not a HOST[:PORT]"},
		{"alice:secretpw/x relay.test:587\n", ":1: the first field is not a HOST[:PORT]"},
		{"# a numeric password parses as a port\nalice:4711 relay.test:25\nalice:4711 relay.test:26\n", ":3: a second entry for the host and port of line 2"},
	} {
		_, _, err := LoadCredentials(writeFile(t, 0o600, bad.content), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "secretpw") || strings.Contains(err.Error(), "4711") {
			t.Errorf("%q: err %v, want %q and no password", bad.content, err, bad.want)
		}
	}
	half := map[string]string{EnvAuthUser: "u"}
	if _, _, err := LoadCredentials("", func(k string) string { return half[k] }); err == nil {
		t.Error("user without password in the environment: no error")
	}
}

// Lookup of a relay: static targets by address (with their ports), others
// by MX, in order, a failing one skipped; none resolvable is temporary.
func TestLookupRelay(t *testing.T) {
	d, err := testnet.StartDNS(
		"relay.a.test. A 127.0.0.3",
		"mxed.a.test. MX 10 mx.mxed.a.test.",
		"mx.mxed.a.test. A 127.0.0.4",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	rules, err := ParseRoutes(strings.NewReader(
		"a.test smtp:[gone.a.test]:587,[relay.a.test]:2525,mxed.a.test,[127.0.0.9]\nb.test smtp:[gone.a.test]\n"), "r")
	if err != nil {
		t.Fatal(err)
	}
	tab := table(t, Config{Rules: rules, Resolver: &mx.Resolver{Server: d.Addr()}})
	route, err := tab.Lookup(context.Background(), tab.Hop("a.test"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range route.Hosts {
		got = append(got, h.Name+"/"+h.Addrs[0].String()+"/"+strconv.Itoa(h.Port))
	}
	want := "relay.a.test/127.0.0.3/2525 mx.mxed.a.test/127.0.0.4/0 127.0.0.9/127.0.0.9/0"
	if strings.Join(got, " ") != want {
		t.Errorf("hosts %q, want %q", strings.Join(got, " "), want)
	}
	_, err = tab.Lookup(context.Background(), tab.Hop("b.test"))
	var me *mta.Error
	if !errors.As(err, &me) || me.Permanent {
		t.Errorf("unresolvable relay: err %v, want a temporary *mta.Error", err)
	}
	if r, err := tab.Lookup(context.Background(), "mxed.a.test"); err != nil || r.Hosts[0].Name != "mx.mxed.a.test" {
		t.Errorf("a domain key is an MX lookup: %v %v", r, err)
	}
}
