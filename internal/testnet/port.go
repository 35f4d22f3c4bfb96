package testnet

import (
	"fmt"
	"net"
	"strconv"
)

// FreePort returns a TCP port that was free on every listed address at the
// time of the call: it binds the first address on port 0, then the others on
// the port the kernel chose, releases them all, and tries a new port (up to
// 50 times) when one of the binds fails. With no addresses it uses
// 127.0.0.1. Meant for servers on several 127.0.0.x addresses that must
// share one port, as MX hosts do for a relayer told a single --port.
func FreePort(ips ...string) (int, error) {
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	var last error
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, fmt.Errorf("testnet: free port on %s: %w", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		held := []net.Listener{first}
		last = nil
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				last = err
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if last == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("testnet: no port free on all of %v: %w", ips, last)
}
