package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/route"
)

// defaultConfig is read when neither --config nor MXFLUSH_CONFIG names a
// file; a missing default file is no error.
const defaultConfig = "/etc/mxflush/config.json"

// fileConfig is the config file of a run: its path and its flat JSON object,
// one key per flag name with "-" written "_" ("max_conns": 4).
type fileConfig struct {
	path   string
	values map[string]any // nil: no file
}

// configPath finds the config file before kong parses: --config FILE or
// --config=FILE among args (before "--"), else MXFLUSH_CONFIG, else the
// default. explicit is false only for the default.
func configPath(args []string, getenv func(string) string) (path string, explicit bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v, true
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := getenv("MXFLUSH_CONFIG"); v != "" {
		return v, true
	}
	return defaultConfig, false
}

// loadConfig reads and decodes the config file. A missing default file
// gives an empty fileConfig; any other error is exit 78 (EX_CONFIG) naming
// the file.
func loadConfig(path string, explicit bool) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &fileConfig{path: path}, nil
		}
		return nil, exitf(report.ExConfig, "config file: %v", err)
	}
	values := map[string]any{}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&values); err != nil {
		return nil, exitf(report.ExConfig, "config file %s: not a JSON object: %v", path, err)
	}
	return &fileConfig{path: path, values: values}, nil
}

// check refuses keys that name no flag of the model (a typo, a nested
// object, a secret): every key must be a flag name with "_" for "-".
func (fc *fileConfig) check(model *kong.Application) error {
	known := map[string]bool{}
	var walk func(n *kong.Node)
	cmdline := map[string]bool{} // flags for the command line only (env:"-")
	var bare []string            // duration keys given as bare numbers
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, name := range append([]string{f.Name}, f.Aliases...) { // an old name is still a key
				key := strings.ReplaceAll(name, "-", "_")
				if _, num := fc.values[key].(float64); num && f.Target.Type() == reflect.TypeFor[time.Duration]() {
					bare = append(bare, key)
				}
				if len(f.Envs) > 0 {
					known[key] = true
				} else {
					cmdline[key] = true
				}
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(model.Node)
	delete(known, "help")
	delete(known, "version")
	delete(known, "config")
	var bad []string
	for k := range fc.values {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	if len(bare) > 0 {
		sort.Strings(bare)
		// kong would read a number as nanoseconds: {"max_age": 5} was a
		// queue lifetime of 5ns, and the next flush bounced every deferred
		// message.
		return exitf(report.ExConfig, "config file %s: key %q: a bare number has no unit; write the duration as a string with one, such as \"5d\", \"4h\" or \"90s\"", fc.path, bare[0])
	}
	for _, k := range bad {
		if cmdline[k] {
			return exitf(report.ExConfig, "config file %s: key %q: --%s is taken from the command line only, never from the config file (a selection of the queue commands, --shard, or a flag that would make a flush send nothing or change its exit code)", fc.path, k, strings.ReplaceAll(k, "_", "-"))
		}
		if strings.Contains(strings.ToLower(k), "password") {
			return exitf(report.ExConfig, "config file %s: key %q: a password is never read from the config file; use --auth-file or %s", fc.path, k, route.EnvAuthPassword)
		}
	}
	if len(bad) > 0 {
		return exitf(report.ExConfig, "config file %s: unknown key(s) %s: want flag names with _ for -, in one flat object, such as \"max_conns\"", fc.path, strings.Join(bad, ", "))
	}
	return nil
}

// resolver is kong's JSON resolver over the file, except for a flag whose
// environment variable is set: kong applies the environment before
// resolvers, so without this the file would win over the environment. The
// order is flag > environment > file > default.
func (fc *fileConfig) resolver() (kong.Resolver, error) {
	raw, err := json.Marshal(fc.values)
	if err != nil {
		return nil, err
	}
	res, err := kong.JSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return kong.ResolverFunc(func(ctx *kong.Context, parent *kong.Path, flag *kong.Flag) (any, error) {
		if len(flag.Envs) == 0 { // env:"-": command line only (the queue commands' selections)
			return nil, nil
		}
		for _, env := range flag.Envs {
			if _, ok := os.LookupEnv(env); ok {
				return nil, nil
			}
		}
		if v, err := res.Resolve(ctx, parent, flag); v != nil || err != nil {
			return v, err
		}
		// A flag's old name (its alias) is still read as a key, so that a
		// config file written before a rename keeps its meaning.
		for _, a := range flag.Aliases {
			if v, ok := fc.values[strings.ReplaceAll(a, "-", "_")]; ok {
				return v, nil
			}
		}
		return nil, nil
	}), nil
}

// has reports whether the file sets flag, under its name or an old one.
func (fc *fileConfig) has(flag *kong.Flag) bool {
	for _, name := range append([]string{flag.Name}, flag.Aliases...) {
		if _, ok := fc.values[strings.ReplaceAll(name, "-", "_")]; ok {
			return true
		}
	}
	return false
}
