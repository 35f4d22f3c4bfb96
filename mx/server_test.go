package mx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dns takes HOST:PORT: an address, or a name from the hosts file (never
// a DNS query to find the DNS server).
func TestServerAddr(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	body := "# comment\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # v6\n127.0.1.53 resolver.test resolver\n"
	if err := os.WriteFile(hosts, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want, err string }{
		{in: "127.0.0.1:53", want: "127.0.0.1:53"},
		{in: "[::1]:5353", want: "[::1]:5353"},
		{in: "localhost:53", want: "127.0.0.1:53"},
		{in: "LOCALHOST:53", want: "127.0.0.1:53"},
		{in: "ip6-localhost:53", want: "[::1]:53"},
		{in: "resolver:5300", want: "127.0.1.53:5300"},
		{in: "nowhere.test:53", err: "not in " + hosts},
		{in: "127.0.0.1", err: "want HOST:PORT"},
		{in: "127.0.0.1:0", err: "want HOST:PORT"},
		{in: ":53", err: "want HOST:PORT"},
		{in: "[fe80::1%eth0]:53", err: "zone"},
	} {
		got, err := ServerAddr(tc.in, hosts)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ServerAddr(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ServerAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
