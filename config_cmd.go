package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/route"
)

// ConfigCmd is `mxflush config`: it takes flush's flags and prints, for
// each, its effective value and where it came from (flag, env NAME, file
// PATH or default), then whether the SMTP AUTH environment is set. A
// password is never printed.
type ConfigCmd struct {
	FlushCmd `embed:""`
}

// Run prints the table on stdout.
func (c *ConfigCmd) Run(g *Globals) error {
	kctx := g.kctx
	onLine := map[*kong.Flag]bool{}
	for _, p := range kctx.Path {
		if p.Flag != nil && !p.Resolved {
			onLine[p.Flag] = true
		}
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "flag\tvalue\tfrom\n")
	for _, f := range kctx.Flags() {
		if f.Name == "help" || f.Name == "version" {
			continue
		}
		from := "default"
		switch {
		case onLine[f]:
			from = "flag"
		case envSet(f.Envs) != "":
			from = "env " + envSet(f.Envs)
		case g.file != nil && g.file.has(f):
			from = "file " + g.file.path
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\n", f.Name, showValue(kctx.FlagValue(f)), from)
	}
	for _, name := range []string{route.EnvAuthUser, route.EnvAuthPassword} {
		state := "(unset)"
		if _, ok := os.LookupEnv(name); ok {
			state = "(set)"
		}
		fmt.Fprintf(tw, "%s\t%s\tenv\n", name, state)
	}
	if err := tw.Flush(); err != nil {
		return exitf(report.ExIOErr, "writing the configuration: %v", err)
	}
	return nil
}

// envSet returns the first of names set in the environment, or "".
func envSet(names []string) string {
	for _, n := range names {
		if _, ok := os.LookupEnv(n); ok {
			return n
		}
	}
	return ""
}

// showValue prints a flag value; an empty string shows as "".
func showValue(v any) string {
	s := fmt.Sprint(v)
	if s == "" {
		return `""`
	}
	return strings.ReplaceAll(s, "\n", " ")
}
