package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// A step of a transcript: the server sends S, or checks that the client
// sent exactly C (no more, no less, before the server goes on), or starts
// TLS as a server.
type step struct {
	S, C string
	TLS  bool
}

// transcript runs steps on one loopback connection as the server, and
// returns the client's end and a function that waits for the server and
// fails the test on the first difference, or if the client sent more than
// the transcript has.
func transcript(t *testing.T, cfg *tls.Config, steps ...step) (net.Conn, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		var conn net.Conn = c
		br := bufio.NewReader(conn)
		for i, s := range steps {
			switch {
			case s.TLS:
				tc := tls.Server(c, cfg)
				if err := tc.Handshake(); err != nil {
					done <- fmt.Errorf("step %d: server handshake: %w", i, err)
					return
				}
				conn, br = tc, bufio.NewReader(tc)
			case s.S != "":
				if _, err := io.WriteString(conn, s.S); err != nil {
					done <- fmt.Errorf("step %d: write: %w", i, err)
					return
				}
			default:
				got := make([]byte, len(s.C))
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := io.ReadFull(br, got); err != nil {
					done <- fmt.Errorf("step %d: client sent %q, want %q: %w", i, got[:n], s.C, err)
					return
				}
				if string(got) != s.C {
					done <- fmt.Errorf("step %d: client sent %q, want %q", i, got, s.C)
					return
				}
			}
		}
		// The client must send nothing more: it closes, or stays silent.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			done <- fmt.Errorf("after the transcript the client sent %q", rest)
			return
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c, func() {
		t.Helper()
		c.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

var testOpts = Options{CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}

// expect checks a reply's code: expect(t, 250)(cl.Cmd("NOOP")).
func expect(t *testing.T, code int) func(mta.Reply, error) mta.Reply {
	return func(r mta.Reply, err error) mta.Reply {
		t.Helper()
		if err != nil || r.Code != code {
			t.Fatalf("reply %+v, %v; want %d", r, err, code)
		}
		return r
	}
}

// A whole session, byte for byte: a greeting split across lines, EHLO and
// its extensions, a pipelined group written at once and its replies read
// in order (RFC 2920 §3.1), the body normalised and dot-stuffed (RFC 5321
// §4.5.2), RSET and QUIT.
func TestTranscriptSession(t *testing.T) {
	c, wait := transcript(t, nil,
		step{S: "220-mx.b.test ESMTP\r\n220 2.0.0 ready\r\n"},
		step{C: "EHLO relay.a.test\r\n"},
		step{S: "250-mx.b.test\r\n250-pipelining\r\n250-Size 41943040\r\n250-SIZE 10485760\r\n250-AUTH PLAIN\r\n250-auth LOGIN\r\n250 8BITMIME\r\n"},
		step{C: "MAIL FROM:<a@a.test> SIZE=20\r\nRCPT TO:<b@b.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n"},
		step{S: "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354 go ahead\r\n"},
		step{C: "Subject: x\r\n\r\n..dot\r\nlast\r\n.\r\n"},
		step{S: "250 2.0.0 queued\r\n"},
		step{C: "RSET\r\n"},
		step{S: "250 2.0.0 reset\r\n"},
		step{C: "QUIT\r\n"},
		step{S: "221 2.0.0 bye\r\n"},
	)
	defer wait()
	var trace bytes.Buffer
	o := testOpts
	o.Trace = &trace
	cl := New(c, o)
	if g := expect(t, 220)(cl.ReadReply(time.Second)); g.Status != "2.0.0" || g.Text() != "mx.b.test ESMTP; ready" {
		t.Errorf("greeting %+v", g)
	}
	expect(t, 250)(cl.Ehlo("relay.a.test"))
	ext := cl.Extensions()
	if !ext.Has("PIPELINING") || !ext.Has("size") || !ext.Has("8bitmime") || ext.Has("STARTTLS") {
		t.Errorf("extensions %+v", ext)
	}
	if ext.SizeLimit() != 10485760 {
		t.Errorf("SIZE limit %d, want the smaller, 10485760 (RFC 1870 §4)", ext.SizeLimit())
	}
	if p := ext.Params("AUTH"); p != "PLAIN LOGIN" {
		t.Errorf("AUTH params %q, want both lines' mechanisms", p)
	}
	for _, l := range []string{"MAIL FROM:<a@a.test> SIZE=20", "RCPT TO:<b@b.test>", "RCPT TO:<c@b.test>", "DATA"} {
		cl.Queue(l)
	}
	if err := cl.Flush(); err != nil {
		t.Fatal(err)
	}
	expect(t, 250)(cl.Reply())
	expect(t, 250)(cl.Reply())
	if r := expect(t, 550)(cl.Reply()); r.Status != "5.1.1" || r.Text() != "no such; user" {
		t.Errorf("RCPT reply %+v", r)
	}
	expect(t, 354)(cl.Reply())
	dw := cl.Data()
	if _, err := io.Copy(dw, NewNormalizer(strings.NewReader("Subject: x\n\n.dot\nlast"))); err != nil {
		t.Fatal(err)
	}
	dotEnd := dw.End()
	if err := dw.Flush(); err != nil {
		t.Fatal(err)
	}
	if cl.Written() != dotEnd {
		t.Errorf("written %d, want %d: the final dot is the last octet out", cl.Written(), dotEnd)
	}
	expect(t, 250)(cl.ReadReply(time.Second))
	expect(t, 250)(cl.Cmd("RSET"))
	expect(t, 221)(cl.Quit())
	want := "220-mx.b.test ESMTP\r\n220 2.0.0 ready\r\nEHLO relay.a.test\r\n"
	if !strings.HasPrefix(trace.String(), want) || !strings.HasSuffix(trace.String(), "QUIT\r\n221 2.0.0 bye\r\n") {
		t.Errorf("trace %q", trace.String())
	}
}

func serverTLS(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	ca, err := testnet.NewCA("smtpclient test root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mx.b.test")
	if err != nil {
		t.Fatal(err)
	}
	return testnet.ServerTLS(cert), &tls.Config{ServerName: "mx.b.test", RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
}

// STARTTLS (RFC 3207): after the 220 the handshake, the extensions of the
// cleartext EHLO forgotten, and EHLO again over TLS (§4.2).
func TestTranscriptStartTLS(t *testing.T) {
	srv, cfg := serverTLS(t)
	c, wait := transcript(t, srv,
		step{S: "220 mx.b.test ESMTP\r\n"},
		step{C: "EHLO relay.a.test\r\n"},
		step{S: "250-mx.b.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"},
		step{C: "STARTTLS\r\n"},
		step{S: "220 2.0.0 go ahead\r\n"},
		step{TLS: true},
		step{C: "EHLO relay.a.test\r\n"},
		step{S: "250-mx.b.test\r\n250 PIPELINING\r\n"},
		step{C: "QUIT\r\n"},
		step{S: "221 bye\r\n"},
	)
	defer wait()
	cl := New(c, testOpts)
	expect(t, 220)(cl.Reply())
	expect(t, 250)(cl.Ehlo("relay.a.test"))
	r, cs, err := cl.StartTLS(context.Background(), cfg)
	if err != nil || r.Code != 220 || cs == nil || !cs.HandshakeComplete {
		t.Fatalf("StartTLS: %+v, %v", r, err)
	}
	if ext := cl.Extensions(); ext.Has("AUTH") || ext.Has("STARTTLS") {
		t.Errorf("extensions %+v kept after STARTTLS", ext)
	}
	expect(t, 250)(cl.Ehlo("relay.a.test"))
	if ext := cl.Extensions(); !ext.Has("PIPELINING") || ext.Has("AUTH") {
		t.Errorf("extensions over TLS %+v", ext)
	}
	expect(t, 221)(cl.Quit())
}

// Plaintext after the 220 to STARTTLS (RFC 3207 §4.2, response
// injection): discarded, and no handshake starts.
func TestTranscriptStartTLSInjected(t *testing.T) {
	_, cfg := serverTLS(t)
	c, wait := transcript(t, nil,
		step{S: "220 mx.b.test ESMTP\r\n"},
		step{C: "EHLO relay.a.test\r\n"},
		step{S: "250-mx.b.test\r\n250 STARTTLS\r\n"},
		step{C: "STARTTLS\r\n"},
		step{S: "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"},
	)
	defer wait()
	cl := New(c, testOpts)
	expect(t, 220)(cl.Reply())
	expect(t, 250)(cl.Ehlo("relay.a.test"))
	r, cs, err := cl.StartTLS(context.Background(), cfg)
	if r.Code != 220 || cs != nil || !errors.Is(err, ErrPlaintextAfterSTARTTLS) {
		t.Fatalf("StartTLS: %+v, %v, %v; want the plaintext refused", r, cs, err)
	}
	if n := cl.br.Buffered(); n != 0 {
		t.Errorf("%d octets of plaintext kept", n)
	}
}

// loginClient answers LOGIN's prompts (draft-murchison-sasl-login), and
// gives up on anything else.
type loginClient struct{}

func (loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }
func (loginClient) Next(ch []byte) ([]byte, error) {
	switch string(ch) {
	case "Username:":
		return []byte("user"), nil
	case "Password:":
		return []byte("secret"), nil
	}
	return nil, errors.New("unexpected prompt")
}

// AUTH (RFC 4954): an initial response, the 334 challenge loop, "*" to
// cancel a challenge the mechanism cannot answer, and no credentials in
// the trace.
func TestTranscriptAuth(t *testing.T) {
	c, wait := transcript(t, nil,
		step{S: "220 mx.b.test ESMTP\r\n"},
		step{C: "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"},
		step{S: "535 5.7.8 bad credentials\r\n"},
		step{C: "AUTH LOGIN\r\n"},
		step{S: "334 VXNlcm5hbWU6\r\n"},
		step{C: "dXNlcg==\r\n"},
		step{S: "334 UGFzc3dvcmQ6\r\n"},
		step{C: "c2VjcmV0\r\n"},
		step{S: "235 2.7.0 ok\r\n"},
		step{C: "AUTH LOGIN\r\n"},
		step{S: "334 V2hvIGFyZSB5b3U/\r\n"},
		step{C: "*\r\n"},
		step{S: "501 5.7.0 cancelled\r\n"},
		step{C: "AUTH LOGIN\r\n"},
		step{S: "334 not base64!\r\n"},
		step{C: "*\r\n"},
		step{S: "501 5.5.2 cancelled\r\n"},
	)
	defer wait()
	var trace bytes.Buffer
	o := testOpts
	o.Trace = &trace
	cl := New(c, o)
	expect(t, 220)(cl.Reply())
	expect(t, 535)(cl.Auth(sasl.NewPlainClient("", "user", "secret")))
	expect(t, 235)(cl.Auth(loginClient{}))
	for range 2 {
		if r, err := cl.Auth(loginClient{}); r.Code != 501 || !errors.Is(err, ErrSASL) {
			t.Errorf("Auth: %+v, %v; want ErrSASL and the reply to \"*\"", r, err)
		}
	}
	for _, secret := range []string{"secret", "c2VjcmV0", "AHVzZXIAc2VjcmV0", "dXNlcg=="} {
		if strings.Contains(trace.String(), secret) {
			t.Errorf("trace shows %q: %q", secret, trace.String())
		}
	}
	if !strings.Contains(trace.String(), "AUTH LOGIN (credentials not traced): reply 235 2.7.0 ok") {
		t.Errorf("trace %q", trace.String())
	}
}

// Every step that reads a reply stops at the bounds: a server that
// answers with an endless reply gets ErrReplyTooLong, whichever command it
// answers.
func TestBoundedEveryStep(t *testing.T) {
	flood := strings.Repeat("250-xxxxxxxxxxxxxxxxxxxxxxxx\r\n", MaxReplyLines+1)
	steps := map[string]func(cl *Client) error{
		"greeting": func(cl *Client) error { _, err := cl.ReadReply(time.Second); return err },
		"EHLO":     func(cl *Client) error { _, err := cl.Ehlo("relay.a.test"); return err },
		"HELO":     func(cl *Client) error { _, err := cl.Helo("relay.a.test"); return err },
		"STARTTLS": func(cl *Client) error {
			_, _, err := cl.StartTLS(context.Background(), &tls.Config{})
			return err
		},
		"AUTH": func(cl *Client) error { _, err := cl.Auth(loginClient{}); return err },
		"MAIL": func(cl *Client) error { _, err := cl.Cmd("MAIL FROM:<a@a.test>"); return err },
		"final dot": func(cl *Client) error {
			dw := cl.Data()
			dw.End()
			dw.Flush()
			_, err := cl.ReadReply(time.Second)
			return err
		},
		"RSET":        func(cl *Client) error { _, err := cl.Cmd("RSET"); return err },
		"QUIT":        func(cl *Client) error { _, err := cl.Quit(); return err },
		"group reply": func(cl *Client) error { cl.Queue("RCPT TO:<a@b.test>"); cl.Flush(); _, err := cl.Reply(); return err },
	}
	for name, run := range steps {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() {
				defer b.Close()
				if name != "greeting" {
					bufio.NewReader(b).ReadString('\n')
				}
				io.WriteString(b, flood)
			}()
			if err := run(New(a, testOpts)); !errors.Is(err, ErrReplyTooLong) {
				t.Errorf("err = %v; want ErrReplyTooLong", err)
			}
		})
	}
}

// Time: a reply that does not come ends in a timeout; a context that ends
// closes the connection under a blocked read.
func TestTimeoutAndWatch(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cl := New(a, Options{CommandTimeout: 50 * time.Millisecond})
	go io.Copy(io.Discard, b)
	_, err := cl.Cmd("NOOP")
	var ioe *IOError
	if !errors.As(err, &ioe) || !ioe.Timeout() {
		t.Fatalf("err = %v; want a timeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := cl.Watch(ctx)
	cancel()
	if _, err := cl.ReadReply(0); !errors.As(err, &ioe) || ioe.Timeout() {
		t.Fatalf("err = %v; want the connection closed", err)
	}
	if stop() {
		t.Error("stop() = true after the context ended")
	}
}
