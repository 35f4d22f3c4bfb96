// Package deliver runs one SMTP session: Dial connects to the first mail
// exchanger that greets (RFC 5321 §5.1), secures the session as its TLS
// policy says and authenticates when given credentials (go-smtp's client
// for EHLO and AUTH); Send delivers messages one after another on that
// connection, pipelined when the server allows it, and Close says QUIT. Every failure comes back as a *Error that says whether it is
// permanent (fail the recipient) or temporary (defer it); a connection that
// can no longer be used comes back as a *LostError.
//
// Implementation summary, and the invariants callers rely on:
//
//   - dial.go: hosts and addresses are tried in order with a per-address
//     connect timeout; under TLSDANE each host's TLSA records are looked up
//     first; under TLSMay a TLS failure is retried at once on a new
//     connection without STARTTLS (RFC 7435).
//   - open.go: the greeting is read by deliver itself and judged by the
//     code of its last line (RFC 5321 §4.2.1). Unless the policy is none,
//     deliver then says EHLO itself on the raw connection, and runs
//     STARTTLS and the handshake when offered (RFC 3207): go-smtp v0.25.1
//     has no opportunistic STARTTLS. go-smtp then gets the connection,
//     TLS or not, reads a synthetic copy of the greeting and says EHLO with
//     the same --helo name: over TLS for real (RFC 3207 §4.2), in cleartext
//     answered from deliver's own EHLO so the wire carries one EHLO (HELO
//     after 500/502). The EHLO reply is captured raw to find the smallest
//     SIZE (RFC 1870). AUTH (auth.go, RFC 4954) follows, only over TLS
//     unless allowed.
//   - tls.go, dane.go: the policies (none, may, encrypt, verify, dane), the
//     certificate checks (PKIX against Options.TLS.Roots, or TLSA records,
//     RFC 7672) and the TLSState each session reports.
//   - send.go: one Send is one or more transactions for one message (more
//     only after a 452 to RCPT, RFC 5321 §4.5.3.1.10). Results are per
//     recipient (RFC 5321 §3.3). No RSET follows a successful transaction;
//     one follows an aborted one. Nothing is sent for an envelope that fails
//     addr.Check (defence against command injection).
//   - txn.go: the transactions, run by deliver itself on the connection
//     after EHLO and AUTH (go-smtp's client never pipelines). With
//     PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go as one group, and
//     with SendThen the next message's group goes behind the final dot, so
//     a message costs one round trip; without it, one command at a time.
//   - crlf.go: the body is streamed from Message.Open through the
//     normaliser (CRLF only, line length limits) into the dot-stuffer
//     (RFC 5321 §4.5.2). A Session holds at most one message reader open
//     at a time, and between calls none, or the look-ahead message's; it
//     allocates one 32 KiB copy buffer, one 8 KiB write buffer and one
//     normaliser, whatever the number or size of messages. When the
//     server offers SIZE (or lacks 8BITMIME) each message is first read
//     through the normaliser to count its octets as sent (RFC 1870 §4);
//     one of at most 64 KiB so normalised is kept for DATA (at most two
//     per session: the message and its look-ahead), a larger one is read
//     again.
//   - conn.go: every write has a deadline (CommandTimeout per command
//     group, or DataTimeout for body blocks) and every read one
//     (CommandTimeout per reply, GreetingTimeout and FinalTimeout); a
//     context that ends closes the connection from a watcher goroutine.
//   - errors.go: classification at the boundary. A 5yz reply is permanent;
//     4yz, I/O errors, timeouts and anything not understood are temporary
//     (deferring by mistake retries, bouncing by mistake loses mail).
//
// The package knows nothing of the spool: it is handed addresses and a
// function that opens the message.
package deliver
