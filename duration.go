package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// parseDuration reads a duration the way operators write queue lifetimes:
// Go's syntax ("90s", "1h30m") plus days and weeks, "5d", "1w", "1d12h"
// (a day is 24 hours, as Postfix's maximal_queue_lifetime counts them).
// Errors name the value and the units allowed.
func parseDuration(s string) (time.Duration, error) {
	if !strings.ContainsAny(s, "dw") {
		return time.ParseDuration(s)
	}
	rest, total := s, time.Duration(0)
	if rest == "" || rest[0] == '-' || rest[0] == '+' {
		return 0, fmt.Errorf("time: invalid duration %q (a signed value cannot use d or w)", s)
	}
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i <= 0 {
			return 0, fmt.Errorf("time: invalid duration %q (units: ns, us, ms, s, m, h, d, w)", s)
		}
		num := rest[:i]
		j := i + strings.IndexFunc(rest[i:], func(r rune) bool { return (r >= '0' && r <= '9') || r == '.' })
		if j < i {
			j = len(rest)
		}
		unit := rest[i:j]
		rest = rest[j:]
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("time: invalid duration %q", s)
			}
			day := 24 * time.Hour
			if unit == "w" {
				day *= 7
			}
			d = time.Duration(f * float64(day))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("time: invalid duration %q (units: ns, us, ms, s, m, h, d, w)", s)
			}
		}
		total += d
	}
	return total, nil
}

// durationMapper is kong's time.Duration mapper with parseDuration for
// text (flags, MXFLUSH_* variables, string values of the config file). A
// bare number in the config file is refused: kong's own mapper takes it as
// nanoseconds, so {"max_age": 5} meant 5ns, and the next flush bounced
// every deferred message for a queue lifetime of 0s.
func durationMapper() kong.Option {
	return kong.TypeMapper(reflect.TypeFor[time.Duration](), kong.MapperFunc(
		func(ctx *kong.DecodeContext, target reflect.Value) error {
			t, err := ctx.Scan.PopValue("duration")
			if err != nil {
				return err
			}
			var d time.Duration
			switch v := t.Value.(type) {
			case string:
				if d, err = parseDuration(v); err != nil {
					return fmt.Errorf("expected a duration such as 90s, 30m, 4h or 5d but got %q", v)
				}
			case int, int64, float64:
				return fmt.Errorf("a bare number (%v) has no unit: write the duration as a string with one, such as \"5d\", \"4h\" or \"90s\"", v)
			default:
				return fmt.Errorf("expected a duration such as 90s, 30m, 4h or 5d but got %v", v)
			}
			target.Set(reflect.ValueOf(d))
			return nil
		}))
}

// formatDuration writes d the way parseDuration reads it and operators
// write it: whole days as "5d", otherwise hours, minutes and seconds
// without the zero ones ("4h", "1h30m", "90s" is "1m30s"); what is left
// below a second in Go's own form ("250ms").
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d < 0 {
		return "-" + formatDuration(-d)
	}
	const day = 24 * time.Hour
	if d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	if d%time.Second != 0 && d < time.Second {
		return d.String()
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	if d > 0 {
		b.WriteString(d.String())
	}
	return b.String()
}
