// Package deliver is the delivery policy of one SMTP session: Dial
// connects to the first mail exchanger that greets (RFC 5321 §5.1),
// secures the session as its TLS policy says and authenticates when given
// credentials; Send delivers messages one after another on that
// connection, pipelined when the server allows it, and Close says QUIT.
// The wire (commands, the bounded reply reader, STARTTLS, AUTH, the body's
// normalising and dot-stuffing) is smtpclient's; deliver decides. Every
// failure comes back as an *mta.Error that says whether it is permanent
// (fail the recipient) or temporary (defer it); a connection that can no
// longer be used comes back as a *LostError.
//
// Implementation summary, and the invariants callers rely on:
//
//   - dial.go: hosts and addresses are tried in order with a per-address
//     connect timeout; under TLSDANE each host's TLSA records are looked up
//     first, except for a host an insecure DNS answer named
//     (mta.Host.Insecure), which gets TLSMay. An attempt that fails says what to try next on the same
//     address (open.go's retry): under TLSMay a TLS failure is retried at
//     once on a new connection without STARTTLS (RFC 7435), and a server
//     that closed after refusing EHLO is retried with HELO (RFC 5321
//     §4.1.4).
//   - open.go: the greeting is judged by the code of its last line (RFC
//     5321 §4.2.1); EHLO, then STARTTLS when offered and the policy is not
//     none (RFC 3207) and EHLO again over TLS; HELO on the same
//     connection after a 500 or 502. The EHLO reply gives PIPELINING,
//     SIZE (the smallest positive limit, RFC 1870), 8BITMIME and SMTPUTF8.
//     AUTH (auth.go, RFC 4954) follows, only over TLS unless allowed.
//   - tls.go, dane.go: the policies (none, may, encrypt, verify, dane), the
//     certificate checks (PKIX against Options.TLS.Roots, or TLSA records,
//     RFC 7672) and the TLSState each session reports.
//   - send.go: one Send is one or more transactions for one message (more
//     only after a 452 to RCPT, RFC 5321 §4.5.3.1.10). Results are per
//     recipient (RFC 5321 §3.3). No RSET follows a successful transaction;
//     one follows an aborted one. Nothing is sent for an envelope that fails
//     addr.Check (defence against command injection).
//   - txn.go: the transactions. With PIPELINING (RFC 2920) MAIL, the RCPTs
//     and DATA go as one group, and with SendThen the next message's group
//     goes behind the final dot, so a message costs one round trip;
//     without it, one command at a time. A server that answers a group out
//     of order, or a session lost in the middle of the replies, is handled
//     there. A Session holds at most one message reader open at a time,
//     and between calls none, or the look-ahead message's; it allocates
//     one 32 KiB copy buffer and one normaliser, whatever the number or
//     size of messages. When the server offers SIZE (or lacks 8BITMIME)
//     each message is first read through the normaliser to count its
//     octets as sent (RFC 1870 §4); one of at most 64 KiB so normalised is
//     kept for DATA (at most two per session: the message and its
//     look-ahead), a larger one is read again.
//   - errors.go: classification at the boundary. A 5yz reply is permanent;
//     4yz is temporary; a 421 also loses the session (RFC 5321 §3.8); a
//     reply of a class not wanted (354 to RCPT, 250 to DATA) is a
//     temporary protocol error, 4.5.0, and loses the session; I/O errors,
//     timeouts, malformed replies and anything not understood are
//     temporary (deferring by mistake retries, bouncing by mistake loses
//     mail). classify_test.go tables every reply code RFC 5321 names.
//
// The package knows nothing of the spool: it is handed addresses and a
// function that opens the message.
package deliver
