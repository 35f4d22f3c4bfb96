package main

import (
	"bufio"
	"cmp"
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mxflush/mxflush/bench/latency"
	"github.com/mxflush/mxflush/internal/testnet"
)

// farm is a set of receivers on consecutive loopback addresses
// (127.0.N.1, 127.0.N.2, ...) sharing one port, each with an optional
// latency proxy in front: one receiver per domain or per site, so that
// every relayer sees as many servers as there are destinations. The
// receivers are smtp-sink processes, or go-smtp servers offering
// STARTTLS (smtp-sink has no TLS).
type farm struct {
	port    int
	ips     []string // the receivers' addresses
	dialIPs []string // what the MX hosts resolve to: the proxies', or the receivers'
	sinks   []*sink
	recvs   []*testnet.Receiver
	proxies []*latency.Proxy
}

// farmOptions says what startFarm builds.
type farmOptions struct {
	count    int           // receivers
	net      int           // third octet of the receivers' addresses
	proxyNet int           // third octet of the proxies' addresses; 0: no proxies
	delay    time.Duration // one-way delay of the proxies
	tls      *tls.Config   // go-smtp receivers offering STARTTLS with this; nil: smtp-sink
	sinkPath string
	domain   func(i int) string // EHLO name of receiver i (go-smtp)
}

// startFarm starts the receivers and proxies, all on one free port.
func startFarm(o farmOptions) (*farm, error) {
	f := &farm{}
	for i := range o.count {
		f.ips = append(f.ips, fmt.Sprintf("127.0.%d.%d", o.net, i+1))
		if o.proxyNet != 0 {
			f.dialIPs = append(f.dialIPs, fmt.Sprintf("127.0.%d.%d", o.proxyNet, i+1))
		}
	}
	if o.proxyNet == 0 {
		f.dialIPs = f.ips
	}
	var err error
	all := append(append([]string(nil), f.ips...), f.dialIPs...)
	if o.proxyNet == 0 {
		all = f.ips
	}
	if f.port, err = testnet.FreePort(all...); err != nil {
		return nil, err
	}
	for i, ip := range f.ips {
		addr := ip + ":" + strconv.Itoa(f.port)
		if o.tls != nil {
			r, err := testnet.StartSMTP(addr, testnet.SMTPOptions{Domain: o.domain(i), TLS: o.tls})
			if err != nil {
				f.close()
				return nil, err
			}
			f.recvs = append(f.recvs, r)
		} else {
			s, err := startSink(o.sinkPath, addr)
			if err != nil {
				f.close()
				return nil, err
			}
			f.sinks = append(f.sinks, s)
		}
		if o.proxyNet != 0 {
			p, err := latency.Start(f.dialIPs[i]+":"+strconv.Itoa(f.port), addr, o.delay)
			if err != nil {
				f.close()
				return nil, err
			}
			f.proxies = append(f.proxies, p)
		}
	}
	return f, nil
}

// close stops every proxy and receiver the farm started.
func (f *farm) close() {
	for _, p := range f.proxies {
		p.Close()
	}
	for _, s := range f.sinks {
		s.stop()
	}
	for _, r := range f.recvs {
		r.Close()
	}
}

// counts returns the connections opened so far (at the proxies when there
// are any, else the sessions the receivers counted) and the messages
// received.
func (f *farm) counts() (conns, msgs int) {
	for _, s := range f.sinks {
		c, m := s.counts()
		conns, msgs = conns+c, msgs+m
	}
	for _, r := range f.recvs {
		conns += r.Sessions()
		msgs += len(r.Messages())
	}
	if f.proxies != nil {
		conns = 0
		for _, p := range f.proxies {
			conns += p.Conns()
		}
	}
	return conns, msgs
}

// allTLS reports whether every message the go-smtp receivers took came
// over TLS: the sites-wan rows claim STARTTLS.
func (f *farm) allTLS() bool {
	for _, r := range f.recvs {
		for _, m := range r.Messages() {
			if !m.TLS {
				return false
			}
		}
	}
	return true
}

// idle waits until no receiver has a connection still open, then until
// the counters stop moving, and returns them. smtp-sink counts a session
// when it ends, and a relayer may keep connections open after its last
// message (Postfix caches them for smtp_connection_cache_time_limit, 2s):
// waiting here keeps one run's sessions out of the next run's count.
func (f *farm) idle(timeout time.Duration) (conns, msgs int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		open, err := openConns(f.ips, f.port)
		if err != nil {
			return 0, 0, err
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d connections to the receivers still open after %v", open, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The counters are read from smtp-sink's output: give the last lines
	// time to arrive.
	c, m := f.counts()
	for stable := 0; stable < 5; time.Sleep(10 * time.Millisecond) {
		c2, m2 := f.counts()
		if c2 == c && m2 == m {
			stable++
		} else {
			c, m, stable = c2, m2, 0
		}
	}
	return c, m, nil
}

// tcpOpen are the states of /proc/net/tcp in which the server side of a
// connection has not closed it yet: ESTABLISHED, SYN_RECV, CLOSE_WAIT.
var tcpOpen = map[string]bool{"01": true, "03": true, "08": true}

// openConns counts sockets in /proc/net/tcp whose local address is one of
// ips at port and that the server has not closed.
func openConns(ips []string, port int) (int, error) {
	want := map[string]bool{}
	for _, ip := range ips {
		a := netip.MustParseAddr(ip).As4()
		// /proc/net/tcp prints the address as a little-endian 32-bit word.
		want[fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], port)] = true
	}
	fh, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("counting open connections: %w", err)
	}
	defer fh.Close()
	n := 0
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 3 && want[f[1]] && tcpOpen[f[3]] {
			n++
		}
	}
	return n, cmp.Or(sc.Err(), nil)
}
