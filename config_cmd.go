package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/route"
)

// ConfigCmd is `mxflush config`: it takes flush's flags and prints, for
// each, its effective value and where it came from (flag, env NAME, file
// PATH or default), then whether the SMTP AUTH environment is set. A
// password is never printed.
type ConfigCmd struct {
	FlushFlags `embed:""`
}

// configRow is one line of mxflush config: a flag (or an AUTH variable),
// its effective value as an operator writes it, and where it came from.
type configRow struct {
	Flag  string `json:"flag"`
	Value string `json:"value"`
	From  string `json:"from"`
}

// Run prints the table on stdout, or with --json on the command line one
// JSON object: {"settings": [{"flag", "value", "from"}, ...]}.
func (c *ConfigCmd) Run(g *Globals) error {
	kctx := g.kctx
	onLine := map[*kong.Flag]bool{}
	for _, p := range kctx.Path {
		if p.Flag != nil && !p.Resolved {
			onLine[p.Flag] = true
		}
	}
	var rows []configRow
	asJSON := false // config's own output: --json on the command line only (MXFLUSH_JSON is flush's)
	for _, f := range kctx.Flags() {
		if f.Name == "json" && onLine[f] {
			asJSON = true
		}
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
		value := kctx.FlagValue(f)
		switch {
		case f.Name == "helo" && value == "":
			// flush's default: this host's name (see FlushCmd.flush).
			if h, err := os.Hostname(); err == nil && h != "" {
				value = h
			}
		case f.Name == "dns" && value == "":
			// flush's default: the first nameserver of resolv.conf.
			if srv, err := dnsServer(""); err == nil {
				value = srv
				from = "default (/etc/resolv.conf)"
			}
		}
		rows = append(rows, configRow{Flag: "--" + f.Name, Value: showValue(value), From: from})
	}
	for _, name := range []string{route.EnvAuthUser, route.EnvAuthPassword} {
		state := "(unset)"
		if _, ok := os.LookupEnv(name); ok {
			state = "(set)"
		}
		rows = append(rows, configRow{Flag: name, Value: state, From: "env"})
	}
	if asJSON {
		if err := json.NewEncoder(g.stdout).Encode(struct {
			Settings []configRow `json:"settings"`
		}{rows}); err != nil {
			return exitf(report.ExIOErr, "writing the configuration: %v", err)
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "flag\tvalue\tfrom\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Flag, r.Value, r.From)
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

// showValue prints a flag value as it is written on the command line: a
// duration in days when it is whole days ("5d", not "120h0m0s"), else
// without zero units ("4h", "1h30m"); an empty string shows as "".
func showValue(v any) string {
	if d, ok := v.(time.Duration); ok {
		return formatDuration(d)
	}
	s := fmt.Sprint(v)
	if s == "" {
		return `""`
	}
	return strings.ReplaceAll(s, "\n", " ")
}
