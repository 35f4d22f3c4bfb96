package batch

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/mxflush/mxflush/internal/testnet"
)

// scripted is a minimal SMTP receiver for faults go-smtp's server cannot
// produce: a dropped connection mid-DATA, 452 after N recipients, a greeting
// that never comes. hook is asked before each reply; it may replace the
// reply ("" keeps it) or close the connection.
type scripted struct {
	mu        sync.Mutex
	sessions  int
	delivered []scriptedMsg
	hook      func(session int, cmd string, s *scriptedState) (reply string, hangup bool)
}

type scriptedMsg struct {
	Session int
	To      []string
	Data    string
}

// scriptedState is one transaction's state, for the hook.
type scriptedState struct {
	Rcpts     []string
	Delivered int // messages accepted so far in this session
}

func (s *scripted) handle(c net.Conn) {
	s.mu.Lock()
	s.sessions++
	session := s.sessions
	s.mu.Unlock()
	r := bufio.NewReader(c)
	st := &scriptedState{}
	reply := func(cmd, def string) bool {
		if s.hook != nil {
			rep, hangup := s.hook(session, cmd, st)
			if hangup {
				return false
			}
			if rep != "" {
				def = rep
			}
		}
		_, err := fmt.Fprintf(c, "%s\r\n", def)
		return err == nil
	}
	if !reply("greeting", "220 scripted.test ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if !reply("EHLO", "250-scripted.test\r\n250-8BITMIME\r\n250 SIZE 10000000") {
				return
			}
		case strings.HasPrefix(cmd, "MAIL"):
			st.Rcpts = nil
			if !reply("MAIL", "250 2.1.0 Ok") {
				return
			}
		case strings.HasPrefix(cmd, "RCPT"):
			to := rcptArg(line)
			def := "250 2.1.5 Ok"
			if s.hook != nil {
				if rep, hangup := s.hook(session, "RCPT", st); hangup {
					return
				} else if rep != "" {
					def = rep
				}
			}
			if strings.HasPrefix(def, "250") {
				st.Rcpts = append(st.Rcpts, to)
			}
			if _, err := fmt.Fprintf(c, "%s\r\n", def); err != nil {
				return
			}
		case cmd == "DATA":
			if !reply("DATA", "354 go ahead") {
				return
			}
			data, ok := testnet.ReadData(r)
			if !ok {
				return
			}
			if !reply("end", "250 2.0.0 queued") {
				return
			}
			s.mu.Lock()
			s.delivered = append(s.delivered, scriptedMsg{Session: session, To: st.Rcpts, Data: data})
			s.mu.Unlock()
			st.Delivered++
			st.Rcpts = nil
		case cmd == "RSET":
			st.Rcpts = nil
			if !reply("RSET", "250 2.0.0 Ok") {
				return
			}
		case cmd == "QUIT":
			fmt.Fprintf(c, "221 2.0.0 Bye\r\n")
			return
		default:
			fmt.Fprintf(c, "502 5.5.2 unknown command\r\n")
		}
	}
}

func (s *scripted) msgs() []scriptedMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scriptedMsg(nil), s.delivered...)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// rcptArg returns the address of a "RCPT TO:<addr>" command line.
func rcptArg(line string) string {
	line = strings.TrimSpace(line)
	return strings.Trim(line[min(len(line), len("RCPT TO:")):], "<>")
}
