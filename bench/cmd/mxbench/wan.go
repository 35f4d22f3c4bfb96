package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sync/errgroup"

	"github.com/mxflush/mxflush/mx"
)

// wan measures mxflush with 1, 4 and c sessions per site (its default,
// 16, is above the c sessions at once of this table),
// and a client that opens one connection per message, all through the
// latency proxy, for each WAN domain count.
func (w *world) wan(ctx context.Context) error {
	c := w.cfg
	fmt.Printf("### Simulated WAN: %v each way (%v round trip), %d messages, %d sessions at once\n\n", c.wanDelay, 2*c.wanDelay, c.wanN, c.conc)
	fmt.Println("| domains | contender | msgs/s | × conns-per-site 1 | connections | wall s |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	for _, k := range c.wanKs {
		logf("WAN, %d domains", k)
		var cs []contender
		for _, cpd := range []int{1, 4, c.conc} {
			name := fmt.Sprintf("mxflush flush --conns-per-site %d", cpd)
			cs = append(cs, contender{name: name, k: k,
				run: func(ctx context.Context) (result, error) { return w.flush(ctx, w.wanDNS, c.wanN, k, cpd) }})
			if cpd == c.conc {
				break
			}
		}
		cs = append(cs, contender{name: fmt.Sprintf("new connection per message, %d at once", c.conc), k: k,
			run: func(ctx context.Context) (result, error) { return w.perMessage(ctx, c.wanN, k) }})
		res, err := measure(ctx, c, cs)
		if err != nil {
			return err
		}
		base := medianRate(res[0], c.wanN)
		for i, ct := range cs {
			if len(res[i]) == 0 {
				continue
			}
			rate := medianRate(res[i], c.wanN)
			fmt.Printf("| %d | %s | %.0f | %s | %d | %.2f |\n", k, ct.name, rate, ratio(rate, base),
				medianInt(res[i], func(r result) int { return r.Conns }),
				medianDur(res[i], func(r result) time.Duration { return r.Wall }).Seconds())
		}
	}
	fmt.Println()
	return nil
}

// message returns the i-th message to domain dom as sent on the wire
// (the spool's message without the envelope lines).
func (w *world) message(i int, dom string, text []byte) []byte { return messageText(i, dom, text) }

// messageText is the i-th message to domain dom, header and body text.
func messageText(i int, dom string, text []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <bench@source.test>\r\nTo: <u%d@%s>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-Id: <%d@source.test>\r\n\r\n", i, dom, i)
	b.Write(text)
	return b.Bytes()
}

// perMessage is how relayers that do not reuse connections behave
// (nullmailer, msmtpq, dma, chasquid): for every message, connect, EHLO,
// MAIL, RCPT, DATA, QUIT; c such clients at once. MX lookups are made once
// per domain before the clock starts, which favours this baseline.
func (w *world) perMessage(ctx context.Context, n, k int) (result, error) {
	res := &mx.Resolver{Server: w.wanDNS.Addr()}
	addrs := make([]string, k)
	for i := range k {
		route, err := res.Lookup(ctx, domainName(i))
		if err != nil {
			return result{}, err
		}
		addrs[i] = net.JoinHostPort(route.Hosts[0].Addrs[0].String(), strconv.Itoa(w.port))
	}
	text := body(w.cfg.size)
	return w.counted(n, func() (result, error) {
		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(w.cfg.conc)
		for i := range n {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error {
				dom := domainName(i % k)
				return sendOne(addrs[i%k], "u"+strconv.Itoa(i)+"@"+dom, w.message(i, dom, text))
			})
		}
		if err := g.Wait(); err != nil {
			return result{}, err
		}
		return result{usage: usage{Wall: time.Since(start)}, Conns: n, InProc: true}, nil
	})
}

// sendOne delivers one message over a new go-smtp connection.
func sendOne(addr, to string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.test"); err != nil {
		return err
	}
	if err := c.SendMail("bench@source.test", []string{to}, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
