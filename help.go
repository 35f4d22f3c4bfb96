package main

import (
	"strings"

	"github.com/alecthomas/kong"
)

// helpValue is kong's help text of a flag with its default added where the
// flag column does not show it: kong writes the default in place of the
// value's placeholder ("--retry-min=5m"), so a flag with a placeholder of
// its own ("--max-conns=N") showed no default at all. A help text that
// already says its default ("(default: the first nameserver ...)") is left
// as it is.
func helpValue(v *kong.Value) string {
	h := kong.DefaultHelpValueFormatter(v)
	if v.Tag == nil || v.Tag.PlaceHolder == "" || v.Default == "" || strings.Contains(v.OrigHelp, "(default") {
		return h
	}
	def := "(default: " + v.Default + ")"
	if strings.HasSuffix(h, ".") {
		return h[:len(h)-1] + " " + def + "."
	}
	return h + " " + def
}
