package report

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, line, text string }{
		{"1732.P1R2.host", "1732.P1R2.host", "1732.P1R2.host"},
		{"x\nstatus=sent", `x\nstatus=sent`, "x\nstatus=sent"},
		{"a\r\nb", `a\r\nb`, "a\r\nb"},
		{"over\rwrite", `over\rwrite`, `over\rwrite`},
		{"esc\x1b[2Jclear", `esc\x1b[2Jclear`, `esc\x1b[2Jclear`},
		{"tab\there", `tab\there`, "tab\there"},
		{"nul\x00 del\x7f", `nul\x00 del\x7f`, `nul\x00 del\x7f`},
		{"c1\u009bcsi", `c1\x9bcsi`, `c1\x9bcsi`},
		{"bad \xff utf8", `bad \xff utf8`, `bad \xff utf8`},
		{"rtl \u202eoverride", `rtl \u202eoverride`, `rtl \u202eoverride`},
		{"jörg@bücher.test", "jörg@bücher.test", "jörg@bücher.test"},
		{`back\slash`, `back\slash`, `back\slash`},
	} {
		if got := Escape(tc.in); got != tc.line {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := EscapeText(tc.in); got != tc.text {
			t.Errorf("EscapeText(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}
