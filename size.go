package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
)

// byteSize is a size in octets as operators write it: a plain number of
// octets ("10485760"), or a number with a binary unit, K, M or G, with or
// without "iB" ("10M", "10MiB", "512KiB"). A number in the config file is
// octets too.
type byteSize int64

// parseByteSize reads a byteSize; errors name the value and the forms allowed.
func parseByteSize(s string) (byteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: want octets, or a number with K, M or G (KiB, MiB, GiB), such as 10M", s)
	}
	return byteSize(n * mult), nil
}

// Decode implements kong.MapperValue for flags, MXFLUSH_* variables and
// config file values.
func (b *byteSize) Decode(ctx *kong.DecodeContext) error {
	t, err := ctx.Scan.PopValue("size")
	if err != nil {
		return err
	}
	switch v := t.Value.(type) {
	case string:
		n, err := parseByteSize(v)
		if err != nil {
			return err
		}
		*b = n
	case float64:
		if v < 0 || v != math.Trunc(v) || v > math.MaxInt64 {
			return fmt.Errorf("invalid size %v: want a whole number of octets", v)
		}
		*b = byteSize(v)
	case int:
		if v < 0 {
			return fmt.Errorf("invalid size %d: negative", v)
		}
		*b = byteSize(v)
	default:
		return fmt.Errorf("invalid size %v: want octets or a number with K, M or G", v)
	}
	return nil
}

// String writes b in the largest binary unit that divides it, as parsed.
func (b byteSize) String() string {
	n := int64(b)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
