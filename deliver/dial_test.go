package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// refuse421 is a host that greets with 421 and closes (RFC 5321 §3.8).
func refuse421(c net.Conn) { io.WriteString(c, "421 4.3.2 mx busy, try later\r\n") }

// refuse554 greets with a 5yz and waits for QUIT (RFC 5321 §3.1).
func refuse554(c net.Conn) {
	io.WriteString(c, "554 5.7.1 no mail from you\r\n")
	io.Copy(io.Discard, c)
}

// blocklist sends a multi-line greeting whose last line is 521, then closes.
func blocklist(c net.Conn) {
	io.WriteString(c, "220-mx.b.test ESMTP\r\n521 5.7.1 Service unavailable; sending host is on a blocklist\r\n")
}

func TestDialOrder(t *testing.T) {
	type srv struct {
		ip     string
		handle func(net.Conn) // nil: a real receiver
	}
	tests := []struct {
		name      string
		servers   []srv // addresses without a server refuse connections
		hosts     func(port int) []mta.Host
		relay     string // want a session with this relay, or
		perm      bool   // an error: permanent?
		errSubstr string
	}{
		{
			name:    "first address refused, second of the same host",
			servers: []srv{{ip: "127.0.0.3"}},
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2", "127.0.0.3"), host("mx2.b.test", "127.0.0.4")}
			},
			relay: "mx1.b.test[127.0.0.3]",
		},
		{
			name:    "421 banner, next host in MX order",
			servers: []srv{{ip: "127.0.0.2", handle: refuse421}, {ip: "127.0.0.4"}},
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2"), host("mx2.b.test", "127.0.0.4")}
			},
			relay: "mx2.b.test[127.0.0.4]",
		},
		{
			name:    "5yz banner, next host",
			servers: []srv{{ip: "127.0.0.2", handle: blocklist}, {ip: "127.0.0.3"}},
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2", "127.0.0.3"), host("mx2.b.test", "127.0.0.3")}
			},
			relay: "mx2.b.test[127.0.0.3]", // not mx1's second address: same server
		},
		{
			name: "all refuse the connection: temporary",
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2"), host("mx2.b.test", "127.0.0.3")}
			},
			errSubstr: "all MX hosts failed (last: mx2.b.test[127.0.0.3]:%d: connection refused)",
		},
		{
			name:      "multi-line greeting ending in 521: permanent",
			servers:   []srv{{ip: "127.0.0.2", handle: blocklist}},
			hosts:     func(int) []mta.Host { return []mta.Host{host("mx.b.test", "127.0.0.2")} },
			perm:      true,
			errSubstr: "sending host is on a blocklist",
		},
		{
			name:    "every host 5yz: permanent",
			servers: []srv{{ip: "127.0.0.2", handle: blocklist}, {ip: "127.0.0.3", handle: refuse554}},
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2"), host("mx2.b.test", "127.0.0.3")}
			},
			perm:      true,
			errSubstr: "every MX host refused mail (last: mx2.b.test[127.0.0.3]:%d: no mail from you)",
		},
		{
			name:    "5yz and unreachable: temporary",
			servers: []srv{{ip: "127.0.0.2", handle: blocklist}},
			hosts: func(int) []mta.Host {
				return []mta.Host{host("mx1.b.test", "127.0.0.2"), host("mx2.b.test", "127.0.0.3")}
			},
			errSubstr: "connection refused",
		},
		{
			name:      "closed before the greeting ends: temporary",
			servers:   []srv{{ip: "127.0.0.2", handle: func(c net.Conn) { io.WriteString(c, "220-half\r\n") }}},
			hosts:     func(int) []mta.Host { return []mta.Host{host("mx.b.test", "127.0.0.2")} },
			errSubstr: "connection closed by the server",
		},
		{
			name:      "no hosts",
			hosts:     func(int) []mta.Host { return nil },
			errSubstr: "no MX hosts to try",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
			for _, s := range tc.servers {
				if s.handle == nil {
					startReceiver(t, s.ip, port, testnet.SMTPOptions{})
				} else {
					startScript(t, s.ip, port, s.handle)
				}
			}
			s, err := Dial(context.Background(), tc.hosts(port), opts(port))
			if tc.relay != "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer s.Close()
				if want := fmt.Sprintf("%s:%d", tc.relay, port); s.Relay() != want {
					t.Errorf("Relay = %q, want %q", s.Relay(), want)
				}
				return
			}
			var e *mta.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *mta.Error", err, err)
			}
			if e.Permanent != tc.perm {
				t.Errorf("Permanent = %v, want %v: %v", e.Permanent, tc.perm, e)
			}
			want := tc.errSubstr
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, port)
			}
			if !strings.Contains(e.Msg, want) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, want)
			}
			if tc.perm && (e.Code != 521 && e.Code != 554 || e.Status != "5.7.1" || e.Command != "greeting") {
				t.Errorf("permanent error %+v, want code 521/554, 5.7.1, greeting", e)
			}
		})
	}
}

// A multi-line greeting whose last line differs: no EHLO to a host whose
// greeting ends in 521.
func TestDialNoEHLOAfter521(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{greet: []string{"220-mx.b.test ESMTP\r\n521 5.7.1 on a blocklist\r\n"}}
	startFake(t, "127.0.0.2", port, f)
	_, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, opts(port))
	var e *mta.Error
	if !errors.As(err, &e) || !e.Permanent || e.Code != 521 {
		t.Fatalf("err = %v, want permanent 521", err)
	}
	time.Sleep(50 * time.Millisecond)
	if cmds := f.commands(); slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "EHLO") }) {
		t.Errorf("sent %q after a 521 greeting", cmds)
	}
}

// Replies split across segments: greeting and EHLO reply arrive in pieces
// with pauses; nothing may be sent before a reply's last line.
func TestDialSplitReplies(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{
		greet: []string{"220-mx.b.test ESMTP ready\r\n", "220-Unsolicited bulk mail is not accepted here\r\n", "220 Third banner line\r\n"},
		ehlo:  []string{"250-mx.b.test\r\n", "250-SIZE 10000000\r\n250-8BITMIME\r\n", "250 PIPELINING\r\n"},
		pause: 150 * time.Millisecond,
	}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	src := text("Subject: c01\r\n\r\nhi\r\n")
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, src, 20))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	f.mu.Lock()
	early := f.early
	f.mu.Unlock()
	if len(early) > 0 {
		t.Errorf("client spoke before a reply was complete: %q", early)
	}
	want := []string{"EHLO relay.a.test", "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=20", "RCPT TO:<bob@b.test>", "DATA", "QUIT"}
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
}

func TestDialHeloName(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	o := opts(port)
	o.Helo = "relay-7.a.test"
	s := dial(t, o, host("mx.b.test", "127.0.0.2"))
	if _, err := s.Send(context.Background(), message("", []string{"bob@b.test"}, text("x\n"), 2)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m := r.Messages(); len(m) != 1 || m[0].Helo != o.Helo || m[0].From != "" {
		t.Fatalf("messages %+v, want one with Helo %q and null sender", m, o.Helo)
	}
	if c := r.Commands(); len(c) == 0 || c[0] != "EHLO relay-7.a.test" || !slices.Contains(c, "MAIL FROM:<> BODY=8BITMIME SIZE=3") {
		t.Errorf("commands %q", c)
	}
	for _, bad := range []string{"", "two words", "crlf\r\nRSET"} {
		o.Helo = bad
		_, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
		var e *mta.Error
		if !errors.As(err, &e) || e.Permanent || e.Command != "local" {
			t.Errorf("Helo %q: err = %v, want a temporary local error", bad, err)
		}
	}
}

// A stalled server: it accepts TCP and never greets.
func TestDialGreetingStall(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	startScript(t, "127.0.0.2", port, func(c net.Conn) { io.Copy(io.Discard, c) })
	o := opts(port)
	o.GreetingTimeout = fastTimeout
	start := time.Now()
	_, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
	var e *mta.Error
	if !errors.As(err, &e) || e.Permanent || e.Command != "greeting" || e.Status != "4.4.2" || !strings.Contains(e.Msg, "timeout") {
		t.Fatalf("err = %#v, want temporary greeting timeout", err)
	}
	if d := time.Since(start); d > 3*fastTimeout {
		t.Errorf("took %v with a %v greeting timeout", d, fastTimeout)
	}
}

func TestDialCancel(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	startScript(t, "127.0.0.2", port, func(c net.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, []mta.Host{host("mx.b.test", "127.0.0.2")}, opts(port))
	var e *mta.Error
	if !errors.As(err, &e) || e.Permanent || !strings.Contains(e.Msg, "canceled") {
		t.Fatalf("err = %v, want temporary canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v after the context ended", d)
	}
}
