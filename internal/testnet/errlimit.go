package testnet

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
)

// ErrorLimit is a Script handler that answers as Postfix's smtpd does at
// its defaults: every command refused with 4yz or 5yz counts as an error,
// and once a session has had Limit of them (smtpd_hard_error_limit, 20)
// the next command is answered "421 4.7.0 <host> Error: too many errors"
// and the connection is closed, whatever pipelined commands are still
// unanswered (RFC 2920 §3.1 lets a server end the session so). A RCPT to
// an address in Valid gets 250, any other "550 5.1.1 ... User unknown";
// the error count starts again at zero on each connection.
type ErrorLimit struct {
	Valid      map[string]bool // addresses as in RCPT TO:<...>
	Limit      int             // errors before the 421; 0 means Postfix's default, 20
	Pipelining bool            // offer PIPELINING (RFC 2920) in the EHLO reply

	mu        sync.Mutex
	sessions  int
	delivered []Delivery
}

// Delivery is one message an ErrorLimit server accepted.
type Delivery struct {
	Session int      // 1 for the first connection
	To      []string // the recipients it was accepted for
	Data    string   // the content as received, dot-stuffed, without the final dot
}

// Deliveries returns the messages accepted so far, in order.
func (p *ErrorLimit) Deliveries() []Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Delivery(nil), p.delivered...)
}

// Handle serves one connection; give it to StartScript.
func (p *ErrorLimit) Handle(c net.Conn) {
	p.mu.Lock()
	p.sessions++
	session := p.sessions
	p.mu.Unlock()
	limit := p.Limit
	if limit == 0 {
		limit = 20
	}
	const name = "mx.errlimit.test"
	br := bufio.NewReader(c)
	say := func(s string) bool {
		_, err := fmt.Fprintf(c, "%s\r\n", s)
		return err == nil
	}
	if !say("220 " + name + " ESMTP Postfix") {
		return
	}
	errs, inMail := 0, false
	var rcpts []string
	for {
		// smtpd checks the count before it reads the next command.
		if errs >= limit {
			say("421 4.7.0 " + name + " Error: too many errors")
			return
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		reply := ""
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := "250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8"
			if p.Pipelining {
				ext = "250-PIPELINING\r\n" + ext
			}
			reply = "250-" + name + "\r\n" + ext
		case "HELO":
			reply = "250 " + name
		case "MAIL":
			inMail, rcpts = true, nil
			reply = "250 2.1.0 Ok"
		case "RCPT":
			to := strings.Trim(arg[min(len(arg), len("TO:")):], "<>")
			switch {
			case !inMail:
				reply = "503 5.5.1 Error: need MAIL command"
			case p.Valid[to]:
				rcpts = append(rcpts, to)
				reply = "250 2.1.5 Ok"
			default:
				reply = "550 5.1.1 <" + to + ">: Recipient address rejected: User unknown in virtual mailbox table"
			}
		case "DATA":
			switch {
			case !inMail:
				reply = "503 5.5.1 Error: need RCPT command"
			case len(rcpts) == 0:
				reply = "554 5.5.1 Error: no valid recipients"
			}
			if reply != "" {
				break
			}
			if !say("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, ok := ReadData(br)
			if !ok {
				return
			}
			p.mu.Lock()
			p.delivered = append(p.delivered, Delivery{Session: session, To: rcpts, Data: data})
			p.mu.Unlock()
			inMail, rcpts = false, nil
			reply = "250 2.0.0 Ok: queued as 4QxY1"
		case "RSET":
			inMail, rcpts = false, nil
			reply = "250 2.0.0 Ok"
		case "NOOP":
			reply = "250 2.0.0 Ok"
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			reply = "502 5.5.2 Error: command not recognized"
		}
		if reply[0] == '4' || reply[0] == '5' {
			errs++
		}
		if !say(reply) {
			return
		}
	}
}
