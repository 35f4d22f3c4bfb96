package testnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// CA is a certificate authority made up for one test: a self-signed root
// that issues server certificates for loopback receivers. Keys are ECDSA
// P-256, so making one is quick.
type CA struct {
	Cert *x509.Certificate
	PEM  []byte // the root in PEM form, for a --tls-ca file
	key  *ecdsa.PrivateKey
}

// NewCA makes a root named cn, valid from an hour ago for a day.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testnet: ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testnet: ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testnet: ca certificate: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Pool returns a pool that trusts only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a server certificate for names (host names such as
// "mx.a.test", or IP addresses such as "127.0.0.2"), valid from an hour
// ago for a day, with the chain leaf then root (so DANE-TA can match the
// root).
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	return ca.issue(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), names)
}

// IssueExpired is Issue for a certificate that expired an hour ago.
func (ca *CA) IssueExpired(names ...string) (tls.Certificate, error) {
	return ca.issue(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), names)
}

func (ca *CA) issue(from, until time.Time, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testnet: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    from,
		NotAfter:     until,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testnet: certificate for %v: %w", names, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testnet: certificate for %v: %w", names, err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLS returns a server configuration presenting cert.
func ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// TLSALine returns a zone line "_25._tcp.mx.a.test. TLSA 3 1 1 <hex>" for
// owner, with the association data computed from cert (RFC 6698 §2.1).
func TLSALine(owner string, usage, selector, matching uint8, cert *x509.Certificate) (string, error) {
	rr := &dns.TLSA{Hdr: dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 300}}
	if err := rr.Sign(int(usage), int(selector), int(matching), cert); err != nil {
		return "", fmt.Errorf("testnet: TLSA for %s: %w", owner, err)
	}
	return strings.ReplaceAll(rr.String(), "\t", " "), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
