package mx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

// MX order: equal preferences are shuffled (RFC 5321 §5.1). Over 50 lookups
// both hosts must have come first at least once (the chance that a fair
// shuffle never puts one of them first is 2^-49).
func TestLookupShufflesEqualPreferences(t *testing.T) {
	d := startDNS(t,
		"multi.test. MX 20 mx-b.multi.test.",
		"multi.test. MX 10 mx-a1.multi.test.",
		"multi.test. MX 10 mx-a2.multi.test.",
		"mx-a1.multi.test. A 127.0.0.2",
		"mx-a2.multi.test. A 127.0.0.3",
		"mx-b.multi.test. A 127.0.0.4",
	)
	r := &mx.Resolver{Server: d.Addr()}
	first := map[string]int{}
	for range 50 {
		route, err := r.Lookup(context.Background(), "multi.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(route.Hosts) != 3 || route.Hosts[2].Name != "mx-b.multi.test" {
			t.Fatalf("route %s: want both preference-10 hosts, then mx-b", render(route))
		}
		first[route.Hosts[0].Name]++
	}
	if first["mx-a1.multi.test"] == 0 || first["mx-a2.multi.test"] == 0 {
		t.Errorf("first host over 50 lookups: %v; want both mx-a1 and mx-a2 seen first", first)
	}
}

func TestLookupTimeoutIsTemporary(t *testing.T) {
	d := startDNS(t, "slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2")
	d.Delay("slow.test", 5*time.Second)
	r := &mx.Resolver{Server: d.Addr(), Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := r.Lookup(context.Background(), "slow.test")
	elapsed := time.Since(start)
	var me *mta.Error
	if !errors.As(err, &me) || me.Permanent || me.Status != "4.4.3" || me.Code != 451 {
		t.Fatalf("Lookup(slow.test) error = %v; want temporary 451 4.4.3", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Lookup took %v with a 200ms timeout", elapsed)
	}
}

func TestLookupCanceledContext(t *testing.T) {
	d := startDNS(t, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := &mx.Resolver{Server: d.Addr()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Lookup(ctx, "a.test")
	var me *mta.Error
	if !errors.As(err, &me) || me.Permanent || !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup with a canceled context = %v; want temporary *mta.Error wrapping context.Canceled", err)
	}
	if n := d.Queries("a.test", dns.TypeMX); n != 0 {
		t.Errorf("MX queries = %d, want 0", n)
	}
}

// RFC 1035 §4.2.1, RFC 7766 §5: a truncated UDP answer is asked again over TCP.
func TestLookupTruncatedRetriesOverTCP(t *testing.T) {
	d := startDNS(t,
		"big.test. MX 10 mx1.big.test.",
		"big.test. MX 20 mx2.big.test.",
		"mx1.big.test. A 127.0.0.2",
		"mx2.big.test. A 127.0.0.3",
	)
	d.Truncate("big.test")
	r := &mx.Resolver{Server: d.Addr()}
	route, err := r.Lookup(context.Background(), "big.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(route), "mx1.big.test/10[127.0.0.2] mx2.big.test/20[127.0.0.3]"; got != want {
		t.Errorf("route %s, want %s", got, want)
	}
	if n := d.TCPQueries("big.test", dns.TypeMX); n != 1 {
		t.Errorf("TCP MX queries = %d, want 1", n)
	}
	if n := d.Queries("big.test", dns.TypeMX); n != 2 {
		t.Errorf("MX queries = %d, want 2 (UDP then TCP)", n)
	}
	if n := d.TCPQueries("mx1.big.test", dns.TypeA); n != 0 {
		t.Errorf("TCP A queries for an untruncated name = %d, want 0", n)
	}
}

// Address literals need no DNS. The server is closed before the lookups, so
// any query would fail them.
func TestLookupLiteralMakesNoQuery(t *testing.T) {
	d := startDNS(t)
	r := &mx.Resolver{Server: d.Addr(), Timeout: 100 * time.Millisecond}
	d.Close()
	for _, lit := range []string{"[127.0.0.1]", "[IPv6:::1]"} {
		route, err := r.Lookup(context.Background(), lit)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", lit, err)
		}
		if !route.Literal || len(route.Hosts) != 1 || route.Hosts[0].Name != lit {
			t.Errorf("Lookup(%s) = %+v; want one literal host named %s", lit, route, lit)
		}
	}
}

func TestLookupMaxHosts(t *testing.T) {
	var zone []string
	for i := 1; i <= 12; i++ {
		zone = append(zone,
			fmt.Sprintf("many.test. MX %d mx%d.many.test.", i, i),
			fmt.Sprintf("mx%d.many.test. A 127.0.0.%d", i, i+1))
	}
	d := startDNS(t, zone...)
	tests := []struct {
		max, want int
	}{{2, 2}, {0, 10}, {20, 12}}
	for _, tt := range tests {
		r := &mx.Resolver{Server: d.Addr(), MaxHosts: tt.max}
		route, err := r.Lookup(context.Background(), "many.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(route.Hosts) != tt.want {
			t.Errorf("MaxHosts %d: %d hosts, want %d", tt.max, len(route.Hosts), tt.want)
		}
		for i, h := range route.Hosts {
			if h.Pref != uint16(i+1) {
				t.Errorf("MaxHosts %d: host %d is %s/%d, want preference %d", tt.max, i, h.Name, h.Pref, i+1)
			}
		}
	}
	// The hosts cut off were never resolved (only the 12-host lookup asked).
	if n := d.Queries("mx12.many.test", dns.TypeA); n != 1 {
		t.Errorf("A queries for mx12 = %d, want 1", n)
	}
}

func TestServerFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string // want "" means an error
	}{
		{"one", "nameserver 127.0.0.53\n", "127.0.0.53:53"},
		{"first", "# comment\nsearch a.test\nnameserver 127.0.0.53\nnameserver 127.0.0.54\noptions ndots:2\n", "127.0.0.53:53"},
		{"v6", "nameserver ::1\n", "[::1]:53"},
		{"none", "search a.test\noptions edns0\n", ""},
		{"empty", "", ""},
		{"name", "nameserver ns.test\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".conf")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := mx.ServerFromResolvConf(path)
			if tt.want == "" {
				if err == nil {
					t.Errorf("ServerFromResolvConf = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ServerFromResolvConf = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := mx.ServerFromResolvConf(filepath.Join(dir, "missing.conf")); err == nil {
		t.Error("ServerFromResolvConf(missing file): want an error")
	}
}

func TestLookupNoServer(t *testing.T) {
	_, err := (&mx.Resolver{}).Lookup(context.Background(), "a.test")
	var me *mta.Error
	if !errors.As(err, &me) || me.Permanent {
		t.Fatalf("Lookup with no server = %v; want a temporary *mta.Error", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	d := startDNS(b,
		"bench.test. MX 10 mx1.bench.test.",
		"bench.test. MX 10 mx2.bench.test.",
		"mx1.bench.test. A 127.0.0.2",
		"mx2.bench.test. A 127.0.0.3",
		"mx2.bench.test. AAAA ::1",
	)
	r := &mx.Resolver{Server: d.Addr()}
	ctx := context.Background()
	for b.Loop() {
		if _, err := r.Lookup(ctx, "bench.test"); err != nil {
			b.Fatal(err)
		}
	}
}

// A resolver reuses the sockets of finished UDP queries: 200 lookups one
// after another (each an MX and two address queries) come from one
// socket, not 600.
func TestLookupReusesUDPSockets(t *testing.T) {
	var recs []string
	for i := range 200 {
		recs = append(recs, fmt.Sprintf("d%d.test. MX 10 mx.site.test.", i))
	}
	d := startDNS(t, append(recs, "mx.site.test. A 127.0.0.2")...)
	r := &mx.Resolver{Server: d.Addr()}
	defer r.Close()
	for i := range 200 {
		if _, err := r.Lookup(context.Background(), fmt.Sprintf("d%d.test", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.UDPClients(); n != 1 {
		t.Errorf("200 lookups in a row came from %d UDP sockets, want 1", n)
	}
}
