package deliver

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"strings"
)

// verifyDANE checks a server's chain against usable TLSA records
// (RFC 7672 §3.1, RFC 7671):
//
//   - DANE-EE (3): the leaf matches; its names and dates are not checked
//     (RFC 7672 §3.1.1);
//   - DANE-TA (2): a certificate of the chain matches and is the trust
//     anchor: the chain from the leaf to it must verify, dates included,
//     and the leaf must name host or the record's TLSA base domain, the
//     name host's CNAME chain led to (RFC 7672 §3.1.2, §3.2.2). The server
//     must send the anchor in its chain; a bare public key is not enough.
//
// One matching record is enough.
func verifyDANE(certs []*x509.Certificate, rrs []TLSA, host string) error {
	var taErr error
	for _, r := range rrs {
		switch r.Usage {
		case 3:
			if tlsaMatch(certs[0], r) {
				return nil
			}
		case 2:
			for i, ta := range certs {
				if !tlsaMatch(ta, r) {
					continue
				}
				names := []string{host}
				if r.Base != "" && !strings.EqualFold(r.Base, host) {
					names = append(names, r.Base)
				}
				if err := verifyToAnchor(certs, i, names); err != nil {
					taErr = err
					continue
				}
				return nil
			}
		}
	}
	if taErr != nil {
		return errors.Join(errors.New("DANE: a trust anchor matched a TLSA record but the chain does not verify"), taErr)
	}
	return errors.New("DANE: no TLSA record matches the server's certificate chain (RFC 7672 §3)")
}

// verifyToAnchor verifies the leaf up to certs[ta] taken as the only root,
// and that it names one of names.
func verifyToAnchor(certs []*x509.Certificate, ta int, names []string) error {
	if ta > 0 {
		roots := x509.NewCertPool()
		roots.AddCert(certs[ta])
		inter := x509.NewCertPool()
		for _, c := range certs[1:ta] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			return err
		}
	}
	var errs []error
	for _, n := range names {
		err := certs[0].VerifyHostname(n)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tlsaMatch compares one certificate with one record: selector 0 takes the
// whole DER certificate, 1 its SubjectPublicKeyInfo; matching type 0
// compares the data itself, 1 its SHA-256, 2 its SHA-512 (RFC 6698 §2.1).
func tlsaMatch(c *x509.Certificate, r TLSA) bool {
	var data []byte
	switch r.Selector {
	case 0:
		data = c.Raw
	case 1:
		data = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case 0:
		return bytes.Equal(data, r.Data)
	case 1:
		sum := sha256.Sum256(data)
		return bytes.Equal(sum[:], r.Data)
	case 2:
		sum := sha512.Sum512(data)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}
