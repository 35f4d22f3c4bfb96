package route

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mxflush/mxflush/deliver"
)

// Environment variables that carry the smart host's credentials.
const (
	EnvAuthUser     = "MXFLUSH_AUTH_USER"
	EnvAuthPassword = "MXFLUSH_AUTH_PASSWORD"
)

// Credentials are SMTP AUTH user names and passwords for relays: from an
// auth file, by host, and from the environment, for the smart host. They
// are never on the command line (it shows in ps). No method prints a
// password, and no error quotes a line of the file.
type Credentials struct {
	byHost map[string]deliver.Auth // "host:port" or "host", lower case, no brackets
	env    *deliver.Auth           // for the --smarthost relays without an entry
}

// LoadCredentials reads the auth file at path ("" for none) and the
// environment variables EnvAuthUser and EnvAuthPassword through getenv. The
// file has one entry a line, as Postfix's sasl_passwd:
//
//	HOST[:PORT] USER:PASSWORD
//
// HOST may be bracketed ("[smtp.example.net]:587"); an entry with a port
// wins over one without. The password is everything after the first colon
// of the second field to the end of the line. Lines starting with "#" and
// blank lines are skipped. warnings holds one line when the file can be
// read by other users (it should be mode 0600), which is not an error.
func LoadCredentials(path string, getenv func(string) string) (c *Credentials, warnings []string, err error) {
	c = &Credentials{byHost: map[string]deliver.Auth{}}
	user, pass := getenv(EnvAuthUser), getenv(EnvAuthPassword)
	switch {
	case user != "" && pass != "":
		c.env = &deliver.Auth{Username: user, Password: pass}
	case user != "" || pass != "":
		return nil, nil, fmt.Errorf("set both %s and %s, or neither", EnvAuthUser, EnvAuthPassword)
	}
	if path == "" {
		return c, nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("auth file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("auth file %s has mode %04o: other users can read or change the passwords in it; chmod 600 it", path, perm))
	}
	lines := map[string]int{} // entry key -> its line, for the duplicate message
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, value = line[:i], strings.TrimSpace(line[i:])
		}
		u, p, ok := strings.Cut(value, ":")
		if !ok || u == "" || p == "" {
			// Never quote the line: it holds a password.
			return nil, nil, fmt.Errorf("auth file %s:%d: want HOST[:PORT] USER:PASSWORD", path, n)
		}
		t, err := parseTarget(key)
		if err != nil {
			// parseTarget's error quotes the field, and a line with its
			// fields swapped has the password there: say only which rule.
			return nil, nil, fmt.Errorf("auth file %s:%d: the first field is not a HOST[:PORT] (want HOST[:PORT] USER:PASSWORD; are the fields swapped?)", path, n)
		}
		k := credKey(t.Host, t.Port)
		if first, dup := lines[k]; dup {
			// k comes from the first field, which may be a swapped USER:PASSWORD.
			return nil, nil, fmt.Errorf("auth file %s:%d: a second entry for the host and port of line %d", path, n, first)
		}
		lines[k] = n
		c.byHost[k] = deliver.Auth{Username: u, Password: p}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return c, warnings, nil
}

func credKey(host string, port int) string {
	if port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(port)
}

// lookup returns the credentials of host:port from the file (with the
// port first, then without), else the environment's when smarthost is
// set. nil: none.
func (c *Credentials) lookup(host string, port int, smarthost bool) *deliver.Auth {
	if c == nil {
		return nil
	}
	host = strings.ToLower(host)
	for _, k := range []string{credKey(host, port), host} {
		if a, ok := c.byHost[k]; ok {
			return &a
		}
	}
	if smarthost && c.env != nil {
		a := *c.env
		return &a
	}
	return nil
}

// Empty reports whether there are no credentials at all.
func (c *Credentials) Empty() bool { return c == nil || (len(c.byHost) == 0 && c.env == nil) }

// HasEnv reports whether the environment gave credentials.
func (c *Credentials) HasEnv() bool { return c != nil && c.env != nil }
