package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
)

// TLSMode is a TLS security level, named as Postfix names them
// (smtp_tls_security_level). The zero value is TLSMay, the default for MX
// delivery.
type TLSMode uint8

const (
	// TLSMay is opportunistic TLS (RFC 3207, RFC 7435): STARTTLS when the
	// server offers it, any certificate; cleartext when it is not offered,
	// when it is refused (454) on the same connection, and after a failed
	// handshake on a new connection.
	TLSMay TLSMode = iota
	// TLSNone never sends STARTTLS.
	TLSNone
	// TLSEncrypt requires TLS with any certificate; no TLS defers.
	TLSEncrypt
	// TLSVerify requires TLS and a certificate that matches the host name
	// and chains to a trusted root (TLSPolicy.Roots).
	TLSVerify
	// TLSDANE uses the host's TLSA records when the resolver authenticated
	// them (RFC 7672): a usable record makes TLS required and the
	// certificate must match one; records that are all unusable make TLS
	// required with any certificate (as Postfix's "dane" level does); no
	// authenticated records at all means TLSMay, and so does a host that an
	// insecure DNS answer named (mta.Host.Insecure, RFC 7672 §2.2.1), whose
	// TLSA records are not looked up.
	TLSDANE
)

var modeNames = [...]string{TLSMay: "may", TLSNone: "none", TLSEncrypt: "encrypt", TLSVerify: "verify", TLSDANE: "dane"}

func (m TLSMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("TLSMode(%d)", m)
}

// ParseTLSMode reads "none", "may", "encrypt", "verify" or "dane".
func ParseTLSMode(s string) (TLSMode, error) {
	for m, name := range modeNames {
		if strings.EqualFold(s, name) {
			return TLSMode(m), nil
		}
	}
	return 0, fmt.Errorf("TLS policy %q: want none, may, encrypt, verify or dane", s)
}

// required reports whether the mode never sends mail in cleartext.
func (m TLSMode) required() bool { return m == TLSEncrypt || m == TLSVerify || m == TLSDANE }

// TLSA is one TLSA record (RFC 6698 §2.1) as DANE needs it.
type TLSA struct {
	Usage        uint8  // 2 DANE-TA, 3 DANE-EE; 0 and 1 are unusable for SMTP (RFC 7672 §3.1.3)
	Selector     uint8  // 0 whole certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8  // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte // certificate association data
	// Base is the TLSA base domain the record was found under, when it is
	// not the host: the name the host's CNAME chain led to (RFC 7672
	// §2.2.2). A DANE-TA certificate may name it instead of the host
	// (RFC 7672 §3.2.2). "" is the host.
	Base string
}

// usable reports whether deliver can check r (RFC 7672 §3.1).
func (r TLSA) usable() bool {
	return (r.Usage == 2 || r.Usage == 3) && r.Selector <= 1 && r.MatchingType <= 2
}

// TLSPolicy says how one destination is secured.
type TLSPolicy struct {
	Mode TLSMode
	// Implicit starts TLS right after the TCP connection, before the
	// greeting (RFC 8314 §3.3, port 465). There is no cleartext on such a
	// port, so TLSMay acts as TLSEncrypt; TLSNone is not allowed.
	Implicit bool
	// Roots are the trusted roots for TLSVerify, and for telling whether a
	// certificate was verified in the other modes; nil means the system's.
	Roots *x509.CertPool
	// LookupTLSA returns the TLSA records of _PORT._tcp.HOST (or of the
	// name HOST's authenticated CNAME chain leads to, with TLSA.Base set,
	// RFC 7672 §2.2.2) and whether the resolver authenticated the answer
	// (the AD bit, RFC 4035 §3.2.3).
	// No records is (nil, secure, nil); an error (SERVFAIL, timeout) makes
	// the host unusable for this run (RFC 7672 §2.2). Needed for TLSDANE.
	LookupTLSA func(ctx context.Context, host string, port int) ([]TLSA, bool, error)
}

// TLSState describes the security of one session, for the log line and the
// summary.
type TLSState struct {
	Version  string // "TLSv1.3", "TLSv1.2"; "" for a cleartext session
	Cipher   string // e.g. "TLS_AES_128_GCM_SHA256"; "" for cleartext
	Verified bool   // the certificate chains to a trusted root and matches the host name, or matched a TLSA record
	DANE     bool   // verified by a TLSA record (RFC 7672)
	Implicit bool   // TLS from the first octet (RFC 8314)
	// Note says why a session that tried TLS is in cleartext: "TLS failed,
	// sent without TLS" (then Detail has the failure) or "STARTTLS refused,
	// sent without TLS". "" otherwise.
	Note   string
	Detail string
}

// Token is the short form for the log line: "TLSv1.3:verified",
// "TLSv1.3:dane", "TLSv1.2:unverified", or "none".
func (t TLSState) Token() string {
	switch {
	case t.Version == "":
		return "none"
	case t.DANE:
		return t.Version + ":dane"
	case t.Verified:
		return t.Version + ":verified"
	}
	return t.Version + ":unverified"
}

// plan is the decision for one host: the effective TLS mode and, under
// TLSDANE, the usable TLSA records (none: any certificate, TLS required);
// and the credentials to send, if any.
type plan struct {
	mode     TLSMode
	implicit bool
	dane     []TLSA
	auth     *Auth
	// helo: start with HELO, no EHLO (HELO fallback for a server that
	// closed the connection after refusing EHLO). No extension, TLS or AUTH.
	helo bool
}

// planFor settles TLSDANE into a concrete plan for host:port by looking up
// its TLSA records (RFC 7672 §2.2): none, or not authenticated, is TLSMay.
// A host named by an insecure DNS answer (mta.Host.Insecure) is TLSMay
// without a TLSA lookup: when the MX answer is not authenticated, DANE
// need not apply (RFC 7672 §2.2.1), since whoever could forge the answer
// chose the host; mxflush then does as Postfix's dane level does, rather
// than defer mail over records that protect nothing.
func (p TLSPolicy) planFor(ctx context.Context, host string, port int, insecure bool) (plan, error) {
	pl := plan{mode: p.Mode, implicit: p.Implicit}
	if pl.implicit && pl.mode == TLSMay {
		pl.mode = TLSEncrypt
	}
	if p.Mode != TLSDANE {
		return pl, nil
	}
	withoutDANE := func() plan {
		pl.mode = TLSMay
		if pl.implicit {
			pl.mode = TLSEncrypt
		}
		return pl
	}
	if insecure {
		return withoutDANE(), nil
	}
	if p.LookupTLSA == nil {
		return pl, fmt.Errorf("TLS policy dane needs a TLSA lookup")
	}
	rrs, secure, err := p.LookupTLSA(ctx, host, port)
	if err != nil {
		return pl, err
	}
	if !secure || len(rrs) == 0 {
		return withoutDANE(), nil
	}
	for _, r := range rrs {
		if r.usable() {
			pl.dane = append(pl.dane, r)
		}
	}
	if len(pl.dane) == 0 {
		pl.mode = TLSEncrypt // RFC 7672 §2.2: TLSA published means TLS, even unauthenticated
	}
	return pl, nil
}

// tlsConfig returns the client configuration for a connection to host
// (a name or an IP address, without brackets). Go's own verification is
// off: VerifyConnection checks the certificate as the plan says and
// records in st whether it was verified, so a "may" session can report it.
func (pl plan) tlsConfig(host string, roots *x509.CertPool, st *TLSState) *tls.Config {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if _, err := netip.ParseAddr(host); err != nil {
		cfg.ServerName = host // SNI carries names only (RFC 6066 §3)
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("the server sent no certificate")
		}
		if pl.mode == TLSDANE && len(pl.dane) > 0 {
			if err := verifyDANE(cs.PeerCertificates, pl.dane, host); err != nil {
				return err
			}
			st.Verified, st.DANE = true, true
			return nil
		}
		err := verifyPKIX(cs.PeerCertificates, host, roots)
		st.Verified = err == nil
		if pl.mode == TLSVerify && err != nil {
			return err
		}
		return nil
	}
	return cfg
}

// verifyPKIX checks that the chain leads to a trusted root and that the
// leaf names host (RFC 6125; an IP address must be an IP SAN).
func verifyPKIX(certs []*x509.Certificate, host string, roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	if err != nil {
		return fmt.Errorf("certificate not verified for %s: %w", host, err)
	}
	return nil
}

// fill records the version and cipher of an established connection.
func (st *TLSState) fill(cs tls.ConnectionState) {
	st.Version = strings.Replace(tls.VersionName(cs.Version), "TLS 1.", "TLSv1.", 1)
	st.Cipher = tls.CipherSuiteName(cs.CipherSuite)
}
