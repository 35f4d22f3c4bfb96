package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "120h", want: 120 * time.Hour},
		{in: "5d", want: 120 * time.Hour},
		{in: "1w", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "2d30m", want: 48*time.Hour + 30*time.Minute},
		{in: "0s", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "d", bad: true},
		{in: "5x", bad: true},
		{in: "5dd", bad: true},
		{in: "-1d", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := parseDuration(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseDuration(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// --max-age 5d means 120 hours, and a malformed value is a usage error
// naming it.
func TestFlushDurationsInDays(t *testing.T) {
	w := newWorld(t, nil, nil)
	code, out, errs := w.run("", "config", "--spool", w.spool, "--max-age", "5d", "--warn-after", "1d")
	if code != 0 || !regexp.MustCompile(`--max-age\s+5d\s`).MatchString(out) || !regexp.MustCompile(`--warn-after\s+1d\s`).MatchString(out) {
		t.Errorf("config --max-age 5d --warn-after 1d: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = w.run("", "flush", "--spool", w.spool, "--max-age", "5days")
	if code != 64 || !strings.Contains(errs, "5days") {
		t.Errorf("--max-age 5days: exit %d, stderr %q; want 64 naming the value", code, errs)
	}
}

// formatDuration writes what parseDuration reads back, in the operator's
// units.
func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 120 * time.Hour: "5d", 24 * time.Hour: "1d", 4 * time.Hour: "4h",
		90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 250 * time.Millisecond: "250ms",
		36 * time.Hour: "36h", 1500 * time.Millisecond: "1s500ms",
	} {
		got := formatDuration(d)
		if got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseDuration(got); err != nil || back != d {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", got, back, err, d)
		}
	}
}
