package batch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/spool"
)

// BenchmarkFlush runs whole flushes (scan, plan, MX lookups, delivery,
// spool updates) of n messages of about 2 KiB over k domains to a go-smtp
// receiver on loopback, 8 sessions at most (and per domain). Receiver and
// relayer share the process: read a CPU profile with that in mind
// (go test -bench Flush -cpuprofile cpu.out ./batch). The spool is
// rewritten outside the timer before every run.
func BenchmarkFlush(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, k := range []int{1, 20} {
			b.Run(fmt.Sprintf("n=%d/k=%d", n, k), func(b *testing.B) { benchFlush(b, n, k) })
		}
	}
}

func benchFlush(b *testing.B, n, k int) {
	records := []string{"mx.bench.test. A 127.0.0.2"}
	for i := range k {
		records = append(records, fmt.Sprintf("d%03d.test. MX 10 mx.bench.test.", i))
	}
	dns, err := testnet.StartDNS(records...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dns.Close() })
	port, err := testnet.FreePort("127.0.0.2")
	if err != nil {
		b.Fatal(err)
	}
	recv, err := testnet.StartSMTP("127.0.0.2:"+strconv.Itoa(port), testnet.SMTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { recv.Close() })
	sp, err := spool.Create(filepath.Join(b.TempDir(), "spool"))
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat(strings.Repeat("X", 78)+"\r\n", 26)
	cfg := Config{
		MaxConns: 8, ConnsPerSite: 8,
		Resolver: &mx.Resolver{Server: dns.Addr()},
		Deliver:  deliver.Options{Helo: "relay.test", Port: port},
	}
	b.SetBytes(int64(n * len(body)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range n {
			msg := fmt.Sprintf("X-Envelope-From: <bench@source.test>\nX-Envelope-To: <u%d@d%03d.test>\nSubject: m%d\r\n\r\n%s", i, i%k, i, body)
			if err := os.WriteFile(filepath.Join(sp.Dir(), "new", fmt.Sprintf("b%d.bench", i)), []byte(msg), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		sum, err := Run(b.Context(), sp, cfg)
		if err != nil || sum.Totals.Delivered != n {
			b.Fatalf("Run: %v; delivered %+v, want %d", err, sum.Totals, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
