// Package testnet starts real servers on loopback for tests: a miekg/dns
// server (UDP and TCP on one 127.0.0.1 port, zone lines in memory, switches
// for SERVFAIL, truncation, delays and the AD bit), go-smtp receivers on
// 127.0.0.x that record what they accept (messages, command lines,
// sessions, concurrency; STARTTLS or implicit TLS, AUTH), scripted raw TCP
// servers for protocol corner cases, and a made-up CA for certificates and
// TLSA records.
//
// Rules every user follows: addresses are in 127.0.0.0/8 (127.0.0.2,
// 127.0.0.3 ... need no setup on Linux), ports are free ones (":0" or
// FreePort), names end in ".test" (RFC 6761), and every server a test
// starts, it Closes. Nothing here takes a testing.T; nothing is global, so
// tests may run in parallel. It is imported only by _test.go files and
// imports no mxflush package.
package testnet
