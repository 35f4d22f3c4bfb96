package testnet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func startSMTP(t *testing.T, addr string, o SMTPOptions) *Receiver {
	t.Helper()
	r, err := StartSMTP(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// send runs one go-smtp client session with the given messages.
func send(t *testing.T, addr string, msgs ...string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := c.SendMail("alice@a.test", []string{"bob@b.test", "carol@b.test"}, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestReceiverRecords(t *testing.T) {
	r := startSMTP(t, "127.0.0.2:0", SMTPOptions{})
	if !strings.HasPrefix(r.Addr(), "127.0.0.2:") {
		t.Fatalf("Addr = %q", r.Addr())
	}
	body := "Subject: x\r\n\r\n..dot\r\nDATA\r\nRSET\r\n.x\r\n"
	send(t, r.Addr(), body, "Subject: y\r\n\r\nhi\r\n")

	msgs := r.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m := msgs[0]
	if string(m.Data) != body {
		t.Errorf("Data = %q, want %q (as sent, dot-stuffing removed)", m.Data, body)
	}
	if m.From != "alice@a.test" || !slices.Equal(m.To, []string{"bob@b.test", "carol@b.test"}) {
		t.Errorf("envelope = %q %q", m.From, m.To)
	}
	if m.Helo != "relay.test" || m.Session != 1 || msgs[1].Session != 1 {
		t.Errorf("Helo %q Session %d,%d", m.Helo, m.Session, msgs[1].Session)
	}
	if m.Opts.Body != smtp.Body8BitMIME {
		t.Errorf("Opts.Body = %q, want 8BITMIME (go-smtp adds it when offered)", m.Opts.Body)
	}
	if r.Sessions() != 1 {
		t.Errorf("Sessions = %d, want 1", r.Sessions())
	}
	want := []string{
		"EHLO relay.test",
		"MAIL FROM:<alice@a.test> BODY=8BITMIME", "RCPT TO:<bob@b.test>", "RCPT TO:<carol@b.test>", "DATA",
		"MAIL FROM:<alice@a.test> BODY=8BITMIME", "RCPT TO:<bob@b.test>", "RCPT TO:<carol@b.test>", "DATA",
		"QUIT",
	}
	if got := r.Commands(); !slices.Equal(got, want) {
		t.Errorf("Commands =\n%q\nwant (no message content)\n%q", got, want)
	}
}

func TestReceiverHooks(t *testing.T) {
	refuse := func(code int, ec smtp.EnhancedCode, msg string) error {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	r := startSMTP(t, "127.0.0.2:0", SMTPOptions{
		Rcpt: func(to string) error {
			if to == "carol@b.test" {
				return refuse(550, smtp.EnhancedCode{5, 1, 1}, "No such user")
			}
			return nil
		},
		Data: func(from string, to []string, data []byte) error {
			if bytes.Contains(data, []byte("reject")) {
				return refuse(554, smtp.EnhancedCode{5, 7, 1}, "Rejected")
			}
			return nil
		},
	})
	c, err := smtp.Dial(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMail("alice@a.test", []string{"carol@b.test"}, strings.NewReader("x\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("RCPT refusal: err = %v, want 550", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader("reject\r\n"))
	if !errors.As(err, &se) || se.Code != 554 {
		t.Fatalf("DATA refusal: err = %v, want 554", err)
	}
	if n := len(r.Messages()); n != 0 {
		t.Errorf("%d messages recorded, want 0 (refused ones are not)", n)
	}
}

func TestReceiverSizeAndUTF8(t *testing.T) {
	for _, tc := range []struct {
		o    SMTPOptions
		want []string
		not  []string
	}{
		{SMTPOptions{}, []string{" SIZE\r\n"}, []string{"SMTPUTF8"}},
		{SMTPOptions{MaxMessageBytes: 1000, SMTPUTF8: true, Domain: "big.test"}, []string{" SIZE 1000\r\n", "SMTPUTF8", "big.test"}, nil},
	} {
		r := startSMTP(t, "127.0.0.2:0", tc.o)
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "EHLO relay.test\r\nQUIT\r\n")
		var all strings.Builder
		for {
			l, err := br.ReadString('\n')
			all.WriteString(l)
			if err != nil || strings.HasPrefix(l, "221") {
				break
			}
		}
		c.Close()
		for _, w := range tc.want {
			if !strings.Contains(all.String(), w) {
				t.Errorf("%+v: EHLO reply lacks %q:\n%s", tc.o, w, all.String())
			}
		}
		for _, w := range tc.not {
			if strings.Contains(all.String(), w) {
				t.Errorf("%+v: EHLO reply has %q", tc.o, w)
			}
		}
	}
}

func TestGaugeAcrossReceivers(t *testing.T) {
	g := new(Gauge)
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(3)
	o := SMTPOptions{Active: g, Data: func(string, []string, []byte) error {
		entered.Done()
		<-release
		return nil
	}}
	port, err := FreePort("127.0.0.2", "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	r1 := startSMTP(t, fmt.Sprintf("127.0.0.2:%d", port), o)
	r2 := startSMTP(t, fmt.Sprintf("127.0.0.3:%d", port), o)
	var done sync.WaitGroup
	for _, a := range []string{r1.Addr(), r2.Addr(), r2.Addr()} {
		done.Add(1)
		go func() {
			defer done.Done()
			c, err := smtp.Dial(a)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.SendMail("a@a.test", []string{"b@b.test"}, strings.NewReader("x\r\n")); err != nil {
				t.Error(err)
			}
			_ = c.Quit()
		}()
	}
	entered.Wait()
	if g.Now() != 3 {
		t.Errorf("Now = %d with 3 sessions open", g.Now())
	}
	close(release)
	done.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for g.Now() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g.Now() != 0 || g.Max() != 3 {
		t.Errorf("after: Now %d Max %d, want 0 and 3", g.Now(), g.Max())
	}
	if r1.Sessions() != 1 || r2.Sessions() != 2 {
		t.Errorf("Sessions %d %d, want 1 2", r1.Sessions(), r2.Sessions())
	}
}

func TestReceiverCloseEndsSessions(t *testing.T) {
	g := new(Gauge)
	r, err := StartSMTP("127.0.0.2:0", SMTPOptions{Active: g, DataDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", r.Addr()) // an idle client that never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := smtp.Dial(r.Addr())
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		errc <- c.SendMail("a@a.test", []string{"b@b.test"}, strings.NewReader("x\r\n"))
	}()
	for g.Now() == 0 { // the slow session has started
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-errc; err == nil {
		t.Error("send during Close succeeded")
	}
	if g.Now() != 0 {
		t.Errorf("Gauge.Now = %d after Close", g.Now())
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		t.Error("still accepting after Close")
	}
}
