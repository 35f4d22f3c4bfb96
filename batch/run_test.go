package batch

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/spool"
)

// OnPlan tells the progress line each pass's recipients before the pass
// delivers: the main pass's three, then the bounce pass's one (the DSN for
// the refused recipient), so the total grows as the run learns of work.
func TestRunOnPlanCountsEachPass(t *testing.T) {
	dns, err := testnet.StartDNS("a.test. MX 10 mx.a.test.", "b.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	port, err := testnet.FreePort("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	recv, err := testnet.StartSMTP("127.0.0.2:"+strconv.Itoa(port), testnet.SMTPOptions{
		Rcpt: func(to string) error {
			if to == "gone@b.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	sp, err := spool.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	msg := "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nX-Envelope-To: <carol@b.test>\nX-Envelope-To: <gone@b.test>\nSubject: plan\n\nhi\n"
	if err := os.WriteFile(filepath.Join(sp.Dir(), "new", "m1"), []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var passes []int
	cfg := Config{
		MaxConns: 2,
		Resolver: &mx.Resolver{Server: dns.Addr()},
		Deliver:  deliver.Options{Helo: "relay.test", Port: port},
		OnPlan: func(n int) {
			mu.Lock()
			passes = append(passes, n)
			mu.Unlock()
		},
	}
	if _, err := Run(t.Context(), sp, cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(passes, []int{3, 1}) {
		t.Errorf("OnPlan saw passes %v, want [3 1] (the main pass, then the bounce)", passes)
	}
}

// A Selection narrows the run: with Only{Domains: a.test}, the message to
// a.test and b.test goes to a.test alone and keeps its b.test recipient
// pending, untried; a message with no a.test recipient is not planned.
func TestRunOnlySelectedDomain(t *testing.T) {
	dns, err := testnet.StartDNS("a.test. MX 10 mx.a.test.", "b.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	port, err := testnet.FreePort("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	recv, err := testnet.StartSMTP("127.0.0.2:"+strconv.Itoa(port), testnet.SMTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	sp, err := spool.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"m1": "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nX-Envelope-To: <carol@b.test>\nSubject: both\n\nhi\n",
		"m2": "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <dave@b.test>\nSubject: b only\n\nhi\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(sp.Dir(), "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		MaxConns: 2,
		Resolver: &mx.Resolver{Server: dns.Addr()},
		Deliver:  deliver.Options{Helo: "relay.test", Port: port},
		Only:     &Selection{Domains: []string{"a.test"}},
	}
	sum, err := Run(t.Context(), sp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := recv.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@a.test"}) {
		t.Errorf("received %v, want one transaction to bob@a.test", got)
	}
	if sum.NotSelected != 1 {
		t.Errorf("NotSelected = %d, want 1 (m2)", sum.NotSelected)
	}
	m1, err := sp.Load(spool.QueueCur, "m1")
	if err != nil {
		t.Fatalf("m1 not in cur/: %v", err)
	}
	if !slices.Equal(m1.To, []string{"carol@b.test"}) || m1.Attempts != 0 {
		t.Errorf("m1 keeps %v with %d attempts, want carol@b.test pending and no attempt", m1.To, m1.Attempts)
	}
	if _, err := sp.Load(spool.QueueNew, "m2"); err != nil {
		t.Errorf("m2 was touched: %v", err)
	}
}
