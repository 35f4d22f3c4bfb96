// Package alias reads an aliases file in the subset of /etc/aliases that
// dma and Postfix read, and expands local names through it.
//
// The syntax: one entry a line, "name: address, address"; a line starting
// with white space continues the entry above it; a line whose first
// non-blank character is "#" is a comment, and blank lines are ignored.
// Names are case-insensitive. An entry that delivers locally (a pipe
// "|command", a file "/path", ":include:") is refused, since mxflush only
// relays: its error names the file and the line.
package alias

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Map is a parsed aliases file.
type Map struct {
	file    string
	entries map[string]entry // lower-case name
}

type entry struct {
	targets []string
	line    int
}

// Error is a fault in an aliases file: the file, the line and the rule.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// maxLine bounds one physical line: an aliases file is the operator's, but
// a binary file named by mistake must not be read into memory whole.
const maxLine = 64 << 10

// Parse reads an aliases file; file names it in errors. Errors are *Error,
// or the reader's I/O error.
func Parse(file string, r io.Reader) (*Map, error) {
	m := &Map{file: file, entries: map[string]entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	var (
		name  string // the entry being read, "" before the first
		value strings.Builder
		start int
	)
	flush := func() error {
		if name == "" {
			return nil
		}
		targets, err := m.targets(name, value.String(), start)
		if err != nil {
			return err
		}
		m.entries[name] = entry{targets: targets, line: start}
		name = ""
		value.Reset()
		return nil
	}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name == "" {
				return nil, &Error{file, n, "continuation line before any entry"}
			}
			value.WriteString(" " + trimmed)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		key, rest, ok := strings.Cut(line, ":")
		key = strings.ToLower(strings.Trim(strings.TrimSpace(key), `"`))
		switch {
		case !ok:
			return nil, &Error{file, n, fmt.Sprintf("%q is not an entry: want name: address, address", truncate(trimmed))}
		case key == "" || strings.ContainsAny(key, " \t,@"):
			return nil, &Error{file, n, fmt.Sprintf("%q is not an alias name: want a local name without white space, comma or @", truncate(key))}
		}
		if prev, dup := m.entries[key]; dup {
			return nil, &Error{file, n, fmt.Sprintf("%q is defined twice (first on line %d)", key, prev.line)}
		}
		name, start = key, n
		value.WriteString(rest)
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, &Error{file, 0, fmt.Sprintf("a line longer than %d octets: not an aliases file", maxLine)}
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return m, nil
}

// targets splits an entry's value on commas and refuses local deliveries.
func (m *Map) targets(name, value string, line int) ([]string, error) {
	var out []string
	for _, t := range strings.Split(value, ",") {
		t = strings.TrimSpace(t)
		unq := strings.TrimPrefix(t, `"`)
		switch {
		case t == "":
			continue
		case strings.HasPrefix(unq, "|"):
			return nil, &Error{m.file, line, fmt.Sprintf("%s: %q is a pipe to a command; mxflush delivers no local mail (give an address)", name, truncate(t))}
		case strings.HasPrefix(unq, "/"):
			return nil, &Error{m.file, line, fmt.Sprintf("%s: %q is a file; mxflush delivers no local mail (give an address)", name, truncate(t))}
		case strings.HasPrefix(strings.ToLower(unq), ":include:"):
			return nil, &Error{m.file, line, fmt.Sprintf("%s: %q: :include: is not supported (list the addresses here)", name, truncate(t))}
		case strings.ContainsAny(t, " \t\"<>"):
			if len(t) > 2 && strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") && !strings.ContainsAny(t[1:len(t)-1], " \t\"<>") {
				t = t[1 : len(t)-1]
				break
			}
			return nil, &Error{m.file, line, fmt.Sprintf("%s: %q is not an address", name, truncate(t))}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, &Error{m.file, line, fmt.Sprintf("%s: no address", name)}
	}
	return out, nil
}

// Local says whether an address is a local name the aliases apply to, and
// which: a name without a domain, or one at a domain of this host.
type Local func(addr string) (name string, ok bool)

// Expand returns what addr becomes: itself when it is not local or has no
// alias, else the targets of its alias, each expanded in turn (an alias may
// name other aliases). A name met again while it is being expanded is a
// loop, an *Error naming the names and the line of the entry.
func (m *Map) Expand(addr string, local Local) ([]string, error) {
	var out []string
	err := m.expand(addr, local, nil, &out)
	return out, err
}

func (m *Map) expand(addr string, local Local, path []string, out *[]string) error {
	name, ok := local(addr)
	if !ok || m == nil {
		*out = append(*out, addr)
		return nil
	}
	name = strings.ToLower(name)
	e, ok := m.entries[name]
	if !ok {
		*out = append(*out, addr)
		return nil
	}
	for _, p := range path {
		if p == name {
			return &Error{m.file, e.line, fmt.Sprintf("alias loop: %s -> %s", strings.Join(path, " -> "), name)}
		}
	}
	if len(path) >= 100 {
		return &Error{m.file, e.line, "aliases nested more than 100 deep"}
	}
	for _, t := range e.targets {
		if err := m.expand(t, local, append(path, name), out); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
