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
