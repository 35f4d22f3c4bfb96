// Package smtpclient speaks the client side of SMTP on one connection, and
// nothing more: it writes commands and reads replies, and leaves every
// decision (which reply is permanent, whether to fall back to HELO or to
// cleartext, what to do after a 421) to its caller.
//
// Implementation summary, and the invariants callers rely on:
//
//   - reply.go: one reply reader for every phase (greeting, EHLO, HELO,
//     STARTTLS, AUTH, MAIL, RCPT, DATA, the final dot, RSET, QUIT),
//     following RFC 5321 §4.2's grammar (mta.ParseLine): the code is the
//     last line's, the enhanced status code (RFC 2034 §4) comes off the
//     lines that carry it (mta.SplitStatus). A reply is bounded in lines
//     (MaxReplyLines), in octets (MaxReplyOctets, MaxReplyLine) and in
//     time (the deadline each read sets): past a bound the reply is
//     refused, never cut short and taken as complete.
//   - client.go: every write has a deadline (CommandTimeout for a command
//     group, DataTimeout for each block of content) and every reply one;
//     Watch closes the connection when a context ends. Queue, Flush and
//     Reply are the pipelined group of RFC 2920: commands written
//     together, replies read one by one in the order of the commands.
//   - ehlo.go: EHLO and the extensions it lists (keywords any case, the
//     smallest positive SIZE, RFC 1870 §4); HELO is a separate call.
//   - tls.go: STARTTLS (RFC 3207) and the handshake; plaintext that
//     arrives after the 220 is discarded, and the extensions are
//     forgotten until EHLO is said again (§4.2).
//   - auth.go: AUTH (RFC 4954) through a go-sasl mechanism, with the 334
//     challenge loop, and "*" to cancel what the mechanism cannot answer.
//   - normalize.go, data.go: message content as DATA sends it: CRLF line
//     ends only and line lengths within RFC 5321 §4.5.3.1.6, then
//     dot-stuffed (RFC 5321 §4.5.2) and ended with the final dot.
//
// Failures without a reply are typed: *IOError (closed, reset, timed out),
// ErrMalformedReply and ErrReplyTooLong; a reply, whatever its code, is an
// mta.Reply and no error.
package smtpclient
