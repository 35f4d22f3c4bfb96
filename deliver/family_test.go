package deliver

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// Bind is the source address of the connection, as Postfix's
// smtp_bind_address: the receiver sees the session come from it.
func TestDialBind(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	o := opts(port)
	o.Bind = netip.MustParseAddr("127.0.0.9")
	s := dial(t, o, host("mx.b.test", "127.0.0.2"))
	s.Close()
	h := r.Hellos()
	if len(h) != 1 || h[0].Client != o.Bind {
		t.Errorf("the receiver saw sessions %+v, want one from %v", h, o.Bind)
	}
}

// Family keeps the addresses of one family, as Postfix's inet_protocols:
// with ipv4, an IPv6 address listed first is never tried; with ipv6 and
// only IPv4 addresses, the host has no usable address (temporary).
func TestDialFamily(t *testing.T) {
	port, err := testnet.FreePort("127.0.0.2", "::1")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	r6, err := testnet.StartSMTP(net.JoinHostPort("::1", strconv.Itoa(port)), testnet.SMTPOptions{})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	t.Cleanup(func() { r6.Close() })
	mx := host("mx.b.test", "::1", "127.0.0.2") // ::1 would answer first

	o := opts(port)
	o.Family = FamilyIPv4
	s := dial(t, o, mx)
	if want := "mx.b.test[127.0.0.2]"; !strings.HasPrefix(s.Relay(), want) {
		t.Errorf("ipv4: relay %s, want %s", s.Relay(), want)
	}
	s.Close()
	if len(r.Hellos()) != 1 || len(r6.Hellos()) != 0 {
		t.Errorf("ipv4: %d sessions over IPv4 and %d over IPv6, want 1 and 0", len(r.Hellos()), len(r6.Hellos()))
	}
	o.Family = FamilyIPv6
	s = dial(t, o, mx)
	if want := "mx.b.test[::1]"; !strings.HasPrefix(s.Relay(), want) {
		t.Errorf("ipv6: relay %s, want %s", s.Relay(), want)
	}
	s.Close()

	_, err = Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
	e, ok := err.(*mta.Error)
	if !ok || e.Permanent || !strings.Contains(e.Msg, "no IPv6 address") {
		t.Errorf("ipv6 with IPv4 addresses only: %v, want a temporary error saying there is no IPv6 address", err)
	}

	// An IPv4 bind address reaches IPv4 addresses only.
	o.Family = FamilyAll
	o.Bind = netip.MustParseAddr("127.0.0.9")
	_, err = Dial(context.Background(), []mta.Host{host("mx.b.test", "::1")}, o)
	if e, ok := err.(*mta.Error); !ok || e.Permanent || !strings.Contains(e.Msg, "no IPv4 (bind address 127.0.0.9) address") {
		t.Errorf("IPv4 bind, IPv6 host: %v, want a temporary error naming the bind address", err)
	}
}

func TestParseFamily(t *testing.T) {
	for in, want := range map[string]Family{"all": FamilyAll, "ipv4": FamilyIPv4, "ipv6": FamilyIPv6} {
		if got, err := ParseFamily(in); err != nil || got != want {
			t.Errorf("ParseFamily(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFamily("inet"); err == nil {
		t.Error(`ParseFamily("inet") succeeded`)
	}
}
