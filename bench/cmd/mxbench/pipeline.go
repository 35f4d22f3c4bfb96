package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// pipelining measures, over one session through the latency proxy, what
// RFC 2920 PIPELINING saves per message: mxflush itself (which pipelines,
// the next message's envelope going behind the final dot), a raw client
// sending one command at a time, a client that sends MAIL, RCPT and DATA
// as one group, and one that also sends the next message's MAIL, RCPT and
// DATA right after the final dot, as mxflush does.
func (w *world) pipelining(ctx context.Context) error {
	c := w.cfg
	rtt := 2 * c.wanDelay
	fmt.Printf("### PIPELINING (RFC 2920) over the simulated WAN: one session, %d messages, %v round trip\n\n", c.pipeN, rtt)
	fmt.Println("| client | waits per message | msgs/s | ms per message | round trips per message | saving |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	addr := proxyIP + ":" + strconv.Itoa(w.port)
	modes := []struct {
		name, waits string
		mode        int
	}{
		{"raw client, one command at a time", "MAIL, RCPT, DATA, final dot", stepwise},
		{"raw client, MAIL+RCPT+DATA in one group", "group, final dot", grouped},
		{"raw client, final dot+next MAIL+RCPT+DATA in one group", "final dot with the next envelope", chained},
	}
	cs := []contender{{name: "mxflush flush --conns-per-domain 1",
		run: func(ctx context.Context) (result, error) { return w.flush(ctx, w.wanDNS, c.pipeN, 1, 1) }}}
	for _, m := range modes {
		cs = append(cs, contender{name: m.name, run: func(ctx context.Context) (result, error) {
			return w.counted(c.pipeN, func() (result, error) { return w.rawSession(addr, c.pipeN, m.mode) })
		}})
	}
	logf("pipelining, %d messages per session", c.pipeN)
	res, err := measure(ctx, c, cs)
	if err != nil {
		return err
	}
	perMsg := func(i int) time.Duration {
		return medianDur(res[i], func(r result) time.Duration { return r.Wall }) / time.Duration(c.pipeN)
	}
	var base float64 // the one-command-at-a-time client's seconds per message
	if len(res[1]) > 0 {
		base = perMsg(1).Seconds()
	}
	for i, ct := range cs {
		if len(res[i]) == 0 {
			continue
		}
		per := perMsg(i)
		waits := "final dot with the next envelope"
		if i > 0 {
			waits = modes[i-1].waits
		}
		saving := "–"
		if i != 1 && base > 0 {
			saving = fmt.Sprintf("%.0f%%", 100*(1-per.Seconds()/base))
		}
		fmt.Printf("| %s | %s | %.0f | %.1f | %.2f | %s |\n", ct.name, waits, medianRate(res[i], c.pipeN),
			per.Seconds()*1000, per.Seconds()/rtt.Seconds(), saving)
	}
	fmt.Println()
	return nil
}

// Pipelining modes of rawSession.
const (
	stepwise = iota // wait for each reply before the next command
	grouped         // MAIL, RCPT, DATA sent together (RFC 2920 §3.1: DATA ends a group)
	chained         // the final dot, then the next MAIL, RCPT, DATA (message content may start a group)
)

// rawSession sends n messages over one connection in the given mode and
// QUITs. Only the benchmark's own sink sees it: it checks the codes it
// expects and nothing more.
func (w *world) rawSession(addr string, n, mode int) (result, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Minute))
	r, bw := bufio.NewReader(conn), bufio.NewWriter(conn)
	text := body(w.cfg.size)
	expect := func(codes ...int) error {
		for _, want := range codes {
			code, _, err := readReply(r)
			if err != nil {
				return err
			}
			if code != want {
				return fmt.Errorf("reply %d, want %d", code, want)
			}
		}
		return nil
	}
	envelope := func(i int) {
		fmt.Fprintf(bw, "MAIL FROM:<bench@source.test>\r\nRCPT TO:<u%d@%s>\r\nDATA\r\n", i, domainName(0))
	}
	content := func(i int) {
		bw.Write(w.message(i, domainName(0), text))
		bw.WriteString(".\r\n")
	}
	if err := expect(220); err != nil {
		return result{}, fmt.Errorf("greeting: %w", err)
	}
	bw.WriteString("EHLO bench.test\r\n")
	bw.Flush()
	if code, ehlo, err := readReply(r); err != nil || code != 250 || !strings.Contains(ehlo, "PIPELINING") {
		return result{}, fmt.Errorf("EHLO: reply %d %q (%v), want 250 with PIPELINING", code, ehlo, err)
	}
	if mode == chained {
		envelope(0)
		bw.Flush()
	}
	for i := range n {
		switch mode {
		case stepwise:
			for _, cmd := range []struct {
				line string
				code int
			}{{"MAIL FROM:<bench@source.test>", 250}, {"RCPT TO:<u" + strconv.Itoa(i) + "@" + domainName(0) + ">", 250}, {"DATA", 354}} {
				bw.WriteString(cmd.line + "\r\n")
				bw.Flush()
				if err := expect(cmd.code); err != nil {
					return result{}, fmt.Errorf("message %d: %w", i, err)
				}
			}
		case grouped:
			envelope(i)
			bw.Flush()
			if err := expect(250, 250, 354); err != nil {
				return result{}, fmt.Errorf("message %d: %w", i, err)
			}
		case chained:
			if err := expect(250, 250, 354); err != nil {
				return result{}, fmt.Errorf("message %d: %w", i, err)
			}
		}
		content(i)
		if mode == chained && i+1 < n {
			envelope(i + 1)
		}
		bw.Flush()
		if err := expect(250); err != nil {
			return result{}, fmt.Errorf("message %d, end of data: %w", i, err)
		}
	}
	bw.WriteString("QUIT\r\n")
	bw.Flush()
	if err := expect(221); err != nil {
		return result{}, fmt.Errorf("QUIT: %w", err)
	}
	return result{usage: usage{Wall: time.Since(start)}, Conns: 1, InProc: true}, nil
}

// readReply reads one reply, its lines "ddd-..." up to "ddd ...", and
// returns its code and text.
func readReply(r *bufio.Reader) (int, string, error) {
	var text strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		if len(line) < 4 {
			return 0, "", fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, "", fmt.Errorf("malformed reply %q", line)
		}
		text.WriteString(line)
		if line[3] != '-' {
			return code, text.String(), nil
		}
	}
}
