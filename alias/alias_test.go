package alias

import (
	"errors"
	"strings"
	"testing"
)

// local is the rule of submission: no domain, or the domain host.test.
func local(a string) (string, bool) {
	name, dom, found := strings.Cut(a, "@")
	if !found || strings.EqualFold(dom, "host.test") {
		return name, true
	}
	return "", false
}

const sample = `# /etc/aliases
postmaster: root
Root: ops@a.test,
  oncall@b.test
www-data: webmaster
webmaster: <web@a.test>

"cron": root@host.test
`

func TestExpand(t *testing.T) {
	m, err := Parse("aliases", strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"postmaster", "ops@a.test|oncall@b.test"},
		{"ROOT", "ops@a.test|oncall@b.test"},
		{"www-data", "web@a.test"},
		{"cron@HOST.test", "ops@a.test|oncall@b.test"},
		{"nobody", "nobody"},
		{"root@elsewhere.test", "root@elsewhere.test"},
	} {
		got, err := m.Expand(tc.in, local)
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root: |/usr/bin/procmail", "aliases:1: root: \"|/usr/bin/procmail\" is a pipe"},
		{"# c\nroot: \"|cmd arg\"", "aliases:2: root:"},
		{"root: /var/mail/root", "aliases:1: root: \"/var/mail/root\" is a file"},
		{"list: :include:/etc/list", "aliases:1: list: \":include:/etc/list\": :include: is not supported"},
		{" ops@a.test", "aliases:1: continuation line before any entry"},
		{"root ops@a.test", "aliases:1: \"root ops@a.test\" is not an entry"},
		{"root: a@a.test\nROOT: b@a.test", "aliases:2: \"root\" is defined twice (first on line 1)"},
		{"root:", "aliases:1: root: no address"},
		{"a b: x@a.test", "is not an alias name"},
		{"root: John Doe", "is not an address"},
	} {
		_, err := Parse("aliases", strings.NewReader(tc.in))
		var ae *Error
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an *Error with %q", tc.in, err, tc.want)
		}
	}
}

func TestLoop(t *testing.T) {
	m, err := Parse("aliases", strings.NewReader("a: b\nb: c@host.test, x@a.test\nc: a\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Expand("a", local)
	if err == nil || !strings.Contains(err.Error(), "alias loop: a -> b -> c -> a") {
		t.Fatalf("err = %v, want the loop named", err)
	}
}

// FuzzParse: no panic; an error is an *Error naming the file (or an I/O
// error, impossible here); every target of a parsed file is a non-empty
// address that is no local delivery, and expanding any name ends.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Fuzz(func(t *testing.T, in string) {
		m, err := Parse("f", strings.NewReader(in))
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		for name, e := range m.entries {
			for _, tg := range e.targets {
				if tg == "" || strings.HasPrefix(tg, "|") || strings.HasPrefix(tg, "/") || strings.ContainsAny(tg, "\n,") {
					t.Fatalf("%s: target %q", name, tg)
				}
			}
			if _, err := m.Expand(name, local); err != nil && !strings.Contains(err.Error(), "loop") && !strings.Contains(err.Error(), "deep") {
				t.Fatalf("Expand(%q): %v", name, err)
			}
		}
	})
}
