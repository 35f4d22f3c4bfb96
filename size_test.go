package main

import "testing"

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want byteSize
		bad  bool
	}{
		{in: "10485760", want: 10 << 20},
		{in: "10M", want: 10 << 20},
		{in: "10MiB", want: 10 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "2G", want: 2 << 30},
		{in: "0", want: 0},
		{in: "-1", bad: true},
		{in: "10MB", bad: true}, // decimal units are not taken: say which is meant
		{in: "ten", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseByteSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseByteSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := parseByteSize(got.String()); err != nil || back != got {
			t.Errorf("String of %d = %q does not parse back", got, got.String())
		}
	}
}
