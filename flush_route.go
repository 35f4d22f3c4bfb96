package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/route"
)

// RouteFlags are flush's flags for next hops, TLS and SMTP AUTH. There is
// no flag for a password: the command line shows in ps.
type RouteFlags struct {
	Smarthost         string `help:"Send all mail to these relays instead of looking up MX, tried in order: HOST[:PORT][,HOST[:PORT]...] (no MX lookup of HOST)." placeholder:"HOST[:PORT],..."`
	Routes            string `help:"Routes file: one 'PATTERN smtp:[HOST]:PORT [tls=MODE]' rule a line, as Postfix's transport table (see README)." placeholder:"FILE"`
	TLS               string `name:"tls" help:"TLS policy: none, may (STARTTLS when offered), encrypt (TLS required), verify (TLS and a certificate valid for the host), dane (RFC 7672, needs --dns)." default:"may" enum:"none,may,encrypt,verify,dane"`
	TLSCA             string `name:"tls-ca" help:"PEM file of roots to trust besides the system's (private relays, tests)." placeholder:"FILE"`
	TLSImplicit       bool   `name:"tls-implicit" help:"Start TLS at once instead of STARTTLS (port 465, RFC 8314)."`
	AuthFile          string `help:"SMTP AUTH credentials for relays: 'HOST[:PORT] USER:PASSWORD' lines; keep it mode 600. MXFLUSH_AUTH_USER and MXFLUSH_AUTH_PASSWORD give the smart host's." placeholder:"FILE"`
	AllowInsecureAuth bool   `help:"Send credentials even on a connection without TLS."`
}

// table builds the routing table of the run from the flags. Warnings (an
// auth file others can read, unused credentials) go to stderr. Errors are
// exit 64 for a bad flag value and 78 for a bad file or combination.
func (f *RouteFlags) table(res *mx.Resolver, port int, dnsGiven bool, stderr io.Writer) (*route.Table, error) {
	mode, err := deliver.ParseTLSMode(f.TLS)
	if err != nil {
		return nil, exitf(report.ExUsage, "--tls: %v", err)
	}
	c := route.Config{Resolver: res, Port: port, TrustAD: dnsGiven, AllowInsecureAuth: f.AllowInsecureAuth,
		TLS: deliver.TLSPolicy{Mode: mode, Implicit: f.TLSImplicit}}
	if f.Smarthost != "" {
		hop, err := route.ParseSmarthost(f.Smarthost)
		if err != nil {
			return nil, exitf(report.ExUsage, "%v", err)
		}
		c.Smarthost = &hop
	}
	if f.Routes != "" {
		file, err := os.Open(f.Routes)
		if err != nil {
			return nil, exitf(report.ExConfig, "--routes: %v", err)
		}
		c.Rules, err = route.ParseRoutes(file, f.Routes)
		file.Close()
		if err != nil {
			return nil, exitf(report.ExConfig, "--routes: %v", err)
		}
		for _, r := range c.Rules {
			if r.Hop.Bind.IsValid() {
				if _, err := bindAddr(r.Hop.Bind.String()); err != nil {
					return nil, exitf(report.ExConfig, "--routes: %s: %v", r.Hop.Source, err)
				}
			}
		}
	}
	if f.TLSCA != "" {
		if c.TLS.Roots, err = roots(f.TLSCA); err != nil {
			return nil, exitf(report.ExConfig, "--tls-ca: %v", err)
		}
	}
	creds, warnings, err := route.LoadCredentials(f.AuthFile, os.Getenv)
	if err != nil {
		return nil, exitf(report.ExConfig, "%v", err)
	}
	if creds.HasEnv() && c.Smarthost == nil {
		warnings = append(warnings, route.EnvAuthUser+" is set but there is no --smarthost: those credentials are not used")
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "mxflush: warning: %s\n", w)
	}
	c.Creds = creds
	t, err := route.New(c)
	if err != nil {
		return nil, exitf(report.ExConfig, "%v", err)
	}
	return t, nil
}

// roots is the system's trusted roots plus the certificates of a PEM file.
func roots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// configReason names the first configuration error of a run (credentials
// refused, ...) for stderr, or "".
func configReason(sum *batch.Summary) string {
	for _, d := range sum.Domains {
		if d.ConfigError != "" {
			return d.Domain + ": " + d.ConfigError
		}
	}
	return ""
}
