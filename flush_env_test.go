package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mx"
)

// No environment variable turns a flush into a no-op: kong binds every flag
// to an MXFLUSH_ variable, and MXFLUSH_VERSION=anything once printed a
// version and exited 0 with nothing sent (MXFLUSH_DRY_RUN=1 would have
// planned and sent nothing, exit 0 too).
func TestFlushNoEnvironmentVariableMakesItANoOp(t *testing.T) {
	for _, env := range []string{"MXFLUSH_VERSION", "MXFLUSH_DRY_RUN"} {
		t.Run(env, func(t *testing.T) {
			w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
			w.enqueue("alice@example.test", msg("env"), "bob@a.test")
			t.Setenv(env, "1")
			code, out, errs := w.flush()
			if code != 0 || w.received() != 1 {
				t.Errorf("%s=1: exit %d, %d message(s) received, want exit 0 and 1\n%s%s", env, code, w.received(), out, errs)
			}
			if strings.Contains(out, version) && !strings.Contains(out, "total") {
				t.Errorf("%s=1 printed the version instead of a summary:\n%s", env, out)
			}
		})
	}
}

// --dns takes a host name from /etc/hosts, as its help says (HOST:PORT):
// `--dns localhost:PORT` was refused with "want IP:PORT".
func TestFlushDNSHostFromHostsFile(t *testing.T) {
	ip, err := mx.ServerAddr("localhost:53", "/etc/hosts")
	if err != nil || ip != "127.0.0.1:53" {
		t.Skipf("/etc/hosts does not give localhost 127.0.0.1 first (%q, %v)", ip, err)
	}
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.enqueue("alice@example.test", msg("hosts"), "bob@a.test")
	_, port, _ := net.SplitHostPort(w.dns.Addr())
	code, out, errs := w.run("", "flush", "--spool", w.spool, "--dns", "localhost:"+port, "--port", strconv.Itoa(w.port), "--helo", "relay.test")
	if code != 0 || w.received() != 1 {
		t.Errorf("--dns localhost:%s: exit %d, %d received\n%s%s", port, code, w.received(), out, errs)
	}
	code, _, errs = w.run("", "flush", "--spool", w.spool, "--dns", "no-such-host.test:53", "--port", strconv.Itoa(w.port))
	if code != 78 || !strings.Contains(errs, "no-such-host.test") || !strings.Contains(errs, "never looked up in DNS") {
		t.Errorf("--dns with a name not in /etc/hosts: exit %d, want 78 with a message naming it\n%s", code, errs)
	}
}

// --bind is the source address of every connection (the receiver sees the
// session from it); a routes rule's bind=ADDR wins for its domains; an
// address this host does not have is a configuration error said at once
// (exit 78), not a deferral of every message.
func TestFlushBind(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, nil,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2", "b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3")
	w.enqueue("alice@example.test", msg("bind a"), "bob@a.test")
	w.enqueue("alice@example.test", msg("bind b"), "bob@b.test")
	routes := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(routes, []byte("b.test smtp: bind=127.0.0.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := w.flush("--bind", "127.0.0.8", "--routes", routes)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for ip, want := range map[string]string{"127.0.0.2": "127.0.0.8", "127.0.0.3": "127.0.0.9"} {
		h := w.recv[ip].Hellos()
		if len(h) != 1 || h[0].Client.String() != want {
			t.Errorf("receiver %s saw sessions %+v, want one from %s", ip, h, want)
		}
	}
	code, _, errs = w.flush("--bind", "192.0.2.1")
	if code != 78 || !strings.Contains(errs, "not an address of this host") {
		t.Errorf("--bind 192.0.2.1: exit %d, want 78 saying it is not an address of this host\n%s", code, errs)
	}
}
