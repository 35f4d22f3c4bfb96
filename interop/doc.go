// Package interop runs the built mxflush binary against independently
// written mail and DNS software started on loopback: a private Postfix
// instance as the receiver, and nsd behind a validating unbound as the
// DNS (DNSSEC and DANE). It holds tests only; each skips, naming the
// missing program, when Postfix, nsd, unbound or ldns-signzone is not
// installed, and builds on Linux only (it reads /proc).
package interop
