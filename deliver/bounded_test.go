package deliver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
)

// floodCap is where a flooding receiver stops writing and waits: a client
// without a bound on replies reads all of it (and then times out).
const floodCap = 16 << 20

// flooder is a receiver that answers one command (or greets) with an
// endless multi-line reply, "250-XXX..." lines of lineLen octets, until the
// client closes the connection or floodCap octets are out. written counts
// the octets it managed to write, over every connection.
type flooder struct {
	at      string      // "greeting", or the verb whose reply floods ("EHLO", "HELO", "AUTH", "MAIL", "QUIT")
	secure  bool        // flood EHLO only over TLS (after STARTTLS)
	tls     *tls.Config // offer STARTTLS
	noEHLO  bool        // answer EHLO with 502 (HELO follows)
	lineLen int
	written atomic.Int64
}

// floodAt is a flooder's setup, for a table.
type floodAt struct {
	at     string
	secure bool
	tls    *tls.Config
	noEHLO bool
}

func (f *flooder) serve(c net.Conn) {
	// Small socket buffers on both ends (see smallReadDialer): what the
	// kernel holds stays far below what the test tells apart.
	_ = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	var w io.Writer = c
	br := bufio.NewReader(c)
	if f.at == "greeting" {
		f.flood(w, br)
		return
	}
	io.WriteString(w, "220 flood.b.test ESMTP\r\n")
	secure := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		if verb == f.at && (verb != "EHLO" || secure == f.secure) {
			f.flood(w, br)
			return
		}
		switch verb {
		case "EHLO":
			if f.noEHLO {
				io.WriteString(w, "502 5.5.1 no EHLO here\r\n")
				continue
			}
			ext := "250-flood.b.test\r\n250-AUTH PLAIN\r\n"
			if f.tls != nil && !secure {
				ext += "250-STARTTLS\r\n"
			}
			io.WriteString(w, ext+"250 8BITMIME\r\n")
		case "STARTTLS":
			io.WriteString(w, "220 2.0.0 go ahead\r\n")
			tc := tls.Server(c, f.tls)
			if tc.Handshake() != nil {
				return
			}
			w, br, secure = tc, bufio.NewReader(tc), true
		case "DATA":
			io.WriteString(w, "354 go ahead\r\n")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			io.WriteString(w, "250 2.0.0 queued\r\n")
		default:
			io.WriteString(w, "250 2.0.0 ok\r\n")
		}
	}
}

func (f *flooder) flood(w io.Writer, br *bufio.Reader) {
	line := "250-" + strings.Repeat("X", f.lineLen-6) + "\r\n"
	var n int64
	for n < floodCap {
		k, err := io.WriteString(w, line)
		n += int64(k)
		if err != nil {
			break
		}
	}
	f.written.Add(n)
	if n >= floodCap {
		io.Copy(io.Discard, br) // until the client gives up
	}
}

// smallReadDialer connects with a fixed receive buffer (the kernel's
// autotuning would grow it to megabytes), so that a client that stops
// reading stops the server's writes soon.
type smallReadDialer struct{}

func (smallReadDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	return c, nil
}

// A receiver that answers with an endless multi-line reply, in any phase,
// cannot make the client read without limit: smtpclient's one reply reader
// refuses the reply after smtpclient.MaxReplyLines lines or
// smtpclient.MaxReplyOctets octets, the session fails with a temporary
// error (the message waits, it is never bounced), and the receiver gets
// to write little more than that before the client closes.
func TestReplyFloodBounded(t *testing.T) {
	p := newPKI(t)
	phases := []struct {
		name string
		f    floodAt
		mode TLSMode
		auth bool
		send bool // the flood comes after Dial: in Send, or in Close
	}{
		{name: "greeting", f: floodAt{at: "greeting"}, mode: TLSNone},
		{name: "EHLO, TLS none", f: floodAt{at: "EHLO"}, mode: TLSNone},
		{name: "HELO after a refused EHLO", f: floodAt{at: "HELO", noEHLO: true}, mode: TLSNone},
		{name: "EHLO before STARTTLS", f: floodAt{at: "EHLO", tls: testnet.ServerTLS(p.good)}, mode: TLSEncrypt},
		{name: "EHLO after STARTTLS", f: floodAt{at: "EHLO", secure: true, tls: testnet.ServerTLS(p.good)}, mode: TLSEncrypt},
		{name: "AUTH", f: floodAt{at: "AUTH"}, mode: TLSNone, auth: true},
		{name: "MAIL", f: floodAt{at: "MAIL"}, mode: TLSNone, send: true},
		{name: "QUIT", f: floodAt{at: "QUIT"}, mode: TLSNone, send: true},
	}
	for _, ph := range phases {
		for _, lineLen := range []int{80, 1000} { // the line limit trips first, then the octet limit
			name := ph.name + "/lines"
			if lineLen > 80 {
				name = ph.name + "/octets"
			}
			t.Run(name, func(t *testing.T) {
				f := &flooder{at: ph.f.at, secure: ph.f.secure, tls: ph.f.tls, noEHLO: ph.f.noEHLO, lineLen: lineLen}
				port := freePort(t, "127.0.0.2")
				sc := startScript(t, "127.0.0.2", port, f.serve)
				o := tlsOpts(port, p, ph.mode)
				o.Dialer = smallReadDialer{}
				if ph.auth {
					o.Auth = func(string, int) *Auth {
						return &Auth{Username: authUser, Password: authPass, AllowInsecure: true}
					}
				}
				var err error
				s, derr := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
				switch {
				case !ph.send && derr == nil:
					s.Close()
					t.Fatal("Dial succeeded; want a temporary error")
				case !ph.send:
					err = derr
				case derr != nil:
					t.Fatalf("Dial: %v", derr)
				case f.at == "MAIL":
					var rs []Result
					rs, err = s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("Subject: t\n\nhi\n"), 20))
					wantOutcomes(t, rs, map[string]string{"bob@b.test": "temp 4.4.2"})
					s.Close()
				default:
					wantOutcomes(t, sendOne(t, s), map[string]string{"bob@b.test": "sent"})
					err = s.Close()
				}
				if err == nil {
					t.Fatal("no error; want the reply refused as too long")
				}
				if !ph.send {
					wantTemp(t, err, "4.")
				}
				if !errors.Is(err, smtpclient.ErrReplyTooLong) {
					t.Errorf("err = %v; want the reply refused as too long", err)
				}
				sc.Close() // waits for the receiver to see the close
				if n := f.written.Load(); n > 1<<20 {
					t.Errorf("the receiver wrote %d octets before the client closed; want under 1 MiB", n)
				}
			})
		}
	}
}
