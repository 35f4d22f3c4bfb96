package smtpclient

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func normalize(t testing.TB, r io.Reader) string {
	t.Helper()
	out, err := io.ReadAll(NewNormalizer(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestNormalizer(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"crlf kept", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n"},
		{"bare lf", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n"},
		{"bare cr", "A: b\r\rx\r.\r", "A: b\r\n\r\nx\r\n.\r\n"},
		{"lf cr is two breaks", "a\n\rb", "a\r\n\r\nb\r\n"},
		{"cr cr lf", "a\r\r\nb", "a\r\n\r\nb\r\n"},
		{"final line gets crlf", "A: b\r\n\r\nlast", "A: b\r\n\r\nlast\r\n"},
		{"header only, no newline", "A: b", "A: b\r\n"},
		{"empty first line: all body", "\n" + long("x", 1000), "\r\n" + long("x", 998) + "\r\nxx\r\n"},
		{"body line of exactly 998 kept", "A: b\n\n" + long("y", 998) + "\n", "A: b\r\n\r\n" + long("y", 998) + "\r\n"},
		{"body line of 999 broken", "A: b\n\n" + long("y", 999), "A: b\r\n\r\n" + long("y", 998) + "\r\ny\r\n"},
		{"body line of 2000 broken twice", "\n" + long("z", 2000) + "\n", "\r\n" + long("z", 998) + "\r\n" + long("z", 998) + "\r\nzzzz\r\n"},
		{"header of exactly 998 kept", "X: " + long("a", 995) + "\n\nb", "X: " + long("a", 995) + "\r\n\r\nb\r\n"},
		{
			"header folded at last space",
			"To: " + long("a", 500) + " " + long("b", 600) + "\n\nx",
			"To: " + long("a", 500) + "\r\n " + long("b", 600) + "\r\n\r\nx\r\n",
		},
		{
			"header folded at tab",
			"To: " + long("a", 500) + "\t" + long("b", 600) + "\n",
			"To: " + long("a", 500) + "\r\n\t" + long("b", 600) + "\r\n",
		},
		{
			"header without whitespace: CRLF SP at 998",
			"X:" + long("c", 1200) + "\n",
			"X:" + long("c", 996) + "\r\n " + long("c", 204) + "\r\n",
		},
		{
			"space right after 998 octets is a fold point",
			"X:" + long("c", 996) + " " + long("d", 10) + "\n",
			"X:" + long("c", 996) + "\r\n " + long("d", 10) + "\r\n",
		},
		{
			"leading blanks of a continuation are not a fold point",
			"X: a\n" + long(" ", 5) + long("e", 1100) + "\n",
			"X: a\r\n" + long(" ", 5) + long("e", 993) + "\r\n " + long("e", 107) + "\r\n",
		},
		{
			"long header folded many times",
			"To: " + strings.Repeat("abcdefghi ", 300) + "\n",
			"To: " + strings.TrimSuffix(strings.Repeat("abcdefghi ", 99), " ") + "\r\n" +
				strings.TrimSuffix(" "+strings.Repeat("abcdefghi ", 99), " ") + "\r\n" +
				strings.TrimSuffix(" "+strings.Repeat("abcdefghi ", 99), " ") + "\r\n" +
				" abcdefghi abcdefghi abcdefghi \r\n",
		},
		{"dots are left to the DotWriter", "A: b\n\n.\n..x\n", "A: b\r\n\r\n.\r\n..x\r\n"},
		{"nul and 8-bit pass", "A: \x00\xff\n\n\xc3\xa9", "A: \x00\xff\r\n\r\n\xc3\xa9\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalize(t, strings.NewReader(tc.in)); got != tc.want {
				t.Errorf("normalize(%.60q...)\n got %.200q\nwant %.200q", tc.in, got, tc.want)
			}
			if got := normalize(t, iotest.OneByteReader(strings.NewReader(tc.in))); got != tc.want {
				t.Errorf("one byte at a time: got %.200q", got)
			}
			checkNormalized(t, []byte(tc.in), []byte(tc.want))
		})
	}
}

func TestNormalizerReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("A: b\nc"), iotest.ErrReader(io.ErrClosedPipe))
	out, err := io.ReadAll(NewNormalizer(r))
	if err != io.ErrClosedPipe || string(out) != "A: b\r\n" {
		t.Errorf("got %q, %v; want the complete lines then the error", out, err)
	}
}

// canonical is the input with every CRLF, bare CR and bare LF made CRLF and
// a CRLF after a last unterminated line: what the normaliser must produce
// apart from the breaks it inserts.
func canonical(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); i++ {
		switch in[i] {
		case '\r':
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, in[i])
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// checkNormalized states the normaliser's contract as a property of any
// input and its output:
//
//  1. out has no CR or LF outside CRLF pairs and ends in CRLF (or is empty);
//  2. no line of out is longer than 998 octets (without its CRLF);
//  3. let L be the lines of canonical(in), split at CRLF, with the header
//     section being the lines before the first empty one. out's lines fall
//     into consecutive groups, one per line l of L, such that
//     - in the body: l = g1 + g2 + ... + gk, where every gi but the last is
//     exactly 998 octets (a break is inserted only where needed);
//     - in the header section: l = g1 + u(g2) + ... + u(gk), where each
//     continuation gi (i > 1) starts with SP or TAB (a fold, RFC 5322
//     §2.2.3), and u(gi) is gi itself when the fold was made at whitespace
//     of l, or gi without its leading SP when that SP was inserted.
//
// In words: removing every inserted break (and the SP of a fold made where
// no whitespace was available) gives back the input with CRLF line ends.
func checkNormalized(t testing.TB, in, out []byte) {
	t.Helper()
	for i, c := range out {
		if c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') || c == '\n' && (i == 0 || out[i-1] != '\r') {
			t.Fatalf("bare CR or LF at %d of output %.100q", i, out)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("output does not end in CRLF: %.100q", out)
	}
	split := func(b []byte) [][]byte {
		if len(b) == 0 {
			return nil
		}
		return bytes.Split(bytes.TrimSuffix(b, []byte("\r\n")), []byte("\r\n"))
	}
	lines, outLines := split(canonical(in)), split(out)
	for i, o := range outLines {
		if len(o) > maxLineLength {
			t.Fatalf("output line %d is %d octets", i, len(o))
		}
	}
	header, k := true, 0
	for n, l := range lines {
		if k >= len(outLines) {
			t.Fatalf("output ends before input line %d %.60q", n, l)
		}
		if header && len(l) == 0 {
			header = false
		}
		got := append([]byte(nil), outLines[k]...)
		k++
		for len(got) < len(l) && k < len(outLines) {
			g := outLines[k]
			switch {
			case !header && len(got)%maxLineLength == 0 && len(got) > 0 && bytes.HasPrefix(l[len(got):], g):
				if len(outLines[k-1]) != maxLineLength {
					t.Fatalf("input line %d: body broken after %d octets, not 998", n, len(outLines[k-1]))
				}
			case header && len(g) > 0 && (g[0] == ' ' || g[0] == '\t') && bytes.HasPrefix(l[len(got):], g):
			case header && len(g) > 0 && g[0] == ' ' && bytes.HasPrefix(l[len(got):], g[1:]):
				g = g[1:]
			default:
				t.Fatalf("input line %d %.60q: output line %d %.60q does not continue it", n, l, k, g)
			}
			got = append(got, g...)
			k++
		}
		if !bytes.Equal(got, l) {
			t.Fatalf("input line %d:\n got %.100q\nwant %.100q", n, got, l)
		}
	}
	if k != len(outLines) {
		t.Fatalf("%d extra output lines, first %.60q", len(outLines)-k, outLines[k])
	}
}

// chunky returns reads of random sizes from 1 to max octets.
type chunky struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (c *chunky) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(c.max)
	return c.r.Read(p[:min(n, len(p))])
}

// FuzzNormalize: for any input the output has CRLF line ends only and no
// line over 998 octets, gives back the input once the inserted breaks are
// removed (checkNormalized), does not depend on read sizes, and is
// normalised already: a second pass changes nothing.
func FuzzNormalize(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("a\rb\nc\r\n\r\r\n\n.\r."))
	f.Add([]byte("To: " + strings.Repeat("a ", 700) + "\n\n" + strings.Repeat("b", 2100)))
	f.Add([]byte("X:" + strings.Repeat("c", 2000) + "\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, err := io.ReadAll(NewNormalizer(bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		checkNormalized(t, in, want)
		if again, _ := io.ReadAll(NewNormalizer(bytes.NewReader(want))); !bytes.Equal(again, want) {
			t.Fatalf("not idempotent:\n once %.100q\ntwice %.100q", want, again)
		}
		// The same output whatever the sizes of the underlying reads, and
		// whatever the sizes of the reads from the normaliser.
		one, _ := io.ReadAll(iotest.OneByteReader(NewNormalizer(iotest.OneByteReader(bytes.NewReader(in)))))
		if !bytes.Equal(one, want) {
			t.Fatalf("one byte at a time:\n got %.100q\nwant %.100q", one, want)
		}
		seed := uint64(len(in))
		if len(in) > 0 {
			seed = seed<<8 | uint64(in[0])
		}
		rnd := rand.New(rand.NewPCG(seed, 7))
		odd, _ := io.ReadAll(&chunky{r: NewNormalizer(&chunky{r: bytes.NewReader(in), rnd: rnd, max: 1500}), rnd: rnd, max: 3000})
		if !bytes.Equal(odd, want) {
			t.Fatalf("random read sizes:\n got %.100q\nwant %.100q", odd, want)
		}
	})
}

// TestNormalizerRandom runs the fuzz properties over generated inputs rich
// in line ends, blanks and long lines, so plain "go test" covers them too.
func TestNormalizerRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("xyz \t\r\n.:\xc3")
	for i := 0; i < 300; i++ {
		// Runs of one octet, some long: long lines with and without
		// blanks, blank runs, line-end runs.
		var in []byte
		for len(in) < 4000 && rnd.IntN(12) != 0 {
			c := alphabet[rnd.IntN(len(alphabet))]
			n := 1 + rnd.IntN(4)
			if rnd.IntN(4) == 0 {
				n = 1 + rnd.IntN(1500)
			}
			if c == '\r' || c == '\n' {
				n = min(n, 3)
			}
			in = append(in, bytes.Repeat([]byte{c}, n)...)
		}
		want := normalize(t, bytes.NewReader(in))
		checkNormalized(t, in, []byte(want))
		if one := normalize(t, iotest.OneByteReader(bytes.NewReader(in))); one != want {
			t.Fatalf("input %d: one-byte reads differ", i)
		}
	}
}

func BenchmarkNormalizer(b *testing.B) {
	var msg bytes.Buffer
	msg.WriteString("From: a@a.test\nTo: " + strings.Repeat("someone@b.test, ", 100) + "\nSubject: bench\n\n")
	for msg.Len() < 1<<20 {
		msg.WriteString("The quick brown fox jumps over the lazy dog, again and again.\n")
	}
	in := msg.Bytes()
	z := NewNormalizer(nil)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		z.Reset(bytes.NewReader(in))
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{z}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
