package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mx"
)

// configRun runs mxflush with a config file holding body ("" for none).
func configRun(t *testing.T, body string, args ...string) (int, string, string) {
	t.Helper()
	if body != "" {
		path := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	w := &world{t: t}
	return w.run("", args...)
}

// row returns the value and source `mxflush config` printed for flag.
func row(t *testing.T, out, flag string) (string, string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^--` + regexp.QuoteMeta(flag) + `\s+(\S+)\s+(.+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no row for --%s in:\n%s", flag, out)
	}
	return m[1], strings.TrimSpace(m[2])
}

// Precedence: flag > environment > file > default, as `mxflush config`
// shows it; keys are flag names with _ for -, in one flat object.
func TestConfigPrecedence(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	file := `{"spool": "/tmp/from-file", "max_conns": 3, "conns_per_domain": 2, "port": 2525, "dns": "127.0.0.1:5353", "max_runtime": "30s"}`
	t.Setenv("MXFLUSH_CONNS_PER_DOMAIN", "5")
	t.Setenv("MXFLUSH_PORT", "2526")
	t.Setenv("MXFLUSH_AUTH_PASSWORD", "hunter2-secret")
	code, out, errs := configRun(t, file, "config", "--port", "2527")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, c := range []struct{ flag, value, from string }{
		{"max-conns", "3", "file "},                             // file only
		{"conns-per-site", "5", "env MXFLUSH_CONNS_PER_DOMAIN"}, // env beats file, the old names of both too
		{"port", "2527", "flag"},                                // flag beats env and file
		{"dns", "127.0.0.1:5353", "file "},                      // string from the file
		{"max-runtime", "30s", "file "},                         // duration from the file
		{"retry-min", "5m", "default"},
		{"spool", "/tmp/from-file", "file "}, // the global flag too
	} {
		v, from := row(t, out, c.flag)
		if v != c.value || !strings.HasPrefix(from, c.from) {
			t.Errorf("--%s = %s from %q, want %s from %q", c.flag, v, from, c.value, c.from)
		}
	}
	if strings.Contains(out, "hunter2") || !regexp.MustCompile(`MXFLUSH_AUTH_PASSWORD\s+\(set\)`).MatchString(out) {
		t.Errorf("password not masked as (set):\n%s", out)
	}
}

// --conns-per-site was --conns-per-domain: a config file, a variable or a
// command line written before the rename keeps its meaning.
func TestConnsPerSiteOldNames(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	code, out, errs := configRun(t, `{"spool": "/tmp/s", "conns_per_domain": 2}`, "config")
	if v, from := row(t, out, "conns-per-site"); code != 0 || v != "2" || !strings.HasPrefix(from, "file ") {
		t.Errorf("conns_per_domain in the file: exit %d, --conns-per-site = %s from %q (%s); want 2 from the file", code, v, from, errs)
	}
	code, out, errs = configRun(t, `{"spool": "/tmp/s"}`, "config", "--conns-per-domain", "7")
	if v, _ := row(t, out, "conns-per-site"); code != 0 || v != "7" {
		t.Errorf("--conns-per-domain 7: exit %d, --conns-per-site = %s (%s); want 7", code, v, errs)
	}
}

// A malformed file, a missing explicit file, an unknown key or a password
// in the file exit 78 and name the file.
func TestConfigBadFileExits78(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	for _, c := range []struct{ name, body, want string }{
		{"malformed", `{"max_conns": 3,`, "unexpected EOF"},
		{"not an object", `[1]`, "cannot unmarshal array"},
		{"nested", `{"flush": {"max_conns": 3}}`, `unknown key(s) flush`},
		{"password", `{"auth_password": "x"}`, "never read from the config file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := configRun(t, c.body, "config", "--spool", "/tmp/s")
			if code != 78 || !strings.Contains(errs, "config.json") || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want 78 naming config.json and %q", code, errs, c.want)
			}
		})
	}
	w := &world{t: t}
	missing := filepath.Join(t.TempDir(), "none.json")
	code, _, errs := w.run("", "flush", "--spool", "/tmp/s", "--config", missing)
	if code != 78 || !strings.Contains(errs, missing) {
		t.Errorf("missing --config: exit %d, stderr %q", code, errs)
	}
}

// The queue commands' selections come from the command line only: an
// MXFLUSH_ALL meant for flush does not make `release` take all of hold/,
// and a config key that only a selection flag has ("failed") is refused
// as unknown rather than making a bare `delete` empty failed/.
func TestSelectionFlagsIgnoreEnvAndConfig(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	sp := fixtureSpool(t)
	t.Setenv("MXFLUSH_ALL", "1")
	t.Setenv("MXFLUSH_DOMAIN", "c.test")
	code, out, errs := configRun(t, "", "release", "--spool", sp)
	if code != 64 || !strings.Contains(errs, "give message IDs") {
		t.Errorf("release with MXFLUSH_ALL=1 and no selection: exit %d, out %q, err %q; want 64 asking for a selection", code, out, errs)
	}
	if ents, _ := os.ReadDir(filepath.Join(sp, "hold")); len(ents) != 1 {
		t.Errorf("hold/ has %d files after the refused release, want 1", len(ents))
	}
	code, _, errs = configRun(t, `{"failed": true}`, "delete", "--spool", sp)
	if code != 78 || !strings.Contains(errs, `key "failed": --failed is taken from the command line only`) {
		t.Errorf("delete with a config key failed: exit %d, err %q; want 78 naming the unknown key", code, errs)
	}
	if ents, _ := os.ReadDir(filepath.Join(sp, "failed")); len(ents) != 1 {
		t.Errorf("failed/ has %d files, want 1", len(ents))
	}
	t.Setenv("MXFLUSH_JSON", "1") // meant for flush's summary
	code, out, errs = configRun(t, "", "queue", "--spool", sp)
	if code != 0 || strings.HasPrefix(out, "{") {
		t.Errorf("queue with MXFLUSH_JSON=1: exit %d, out %q, err %q; want the text listing", code, out, errs)
	}
	// flush still takes MXFLUSH_ALL.
	code, out, errs = configRun(t, "", "config", "--spool", sp)
	if v, from := row(t, out, "all"); code != 0 || v != "true" || !strings.HasPrefix(from, "env MXFLUSH_ALL") {
		t.Errorf("config: exit %d, --all = %s from %q (err %q); want true from MXFLUSH_ALL", code, v, from, errs)
	}
}

// A bare number for a duration key is refused, naming the key and showing
// the form to write: kong would take {"max_age": 5} as 5 nanoseconds, and
// the next flush would bounce every deferred message for a queue lifetime
// of 0s.
func TestConfigDurationBareNumberRefused(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	code, out, errs := configRun(t, `{"max_age": 5}`, "config", "--spool", t.TempDir())
	if code != 78 {
		t.Fatalf("exit %d, want 78 (EX_CONFIG)\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, `"max_age"`) || !strings.Contains(errs, `"5d"`) {
		t.Errorf("the error should name the key and show a duration with a unit:\n%s", errs)
	}
	// A string with a unit is still fine.
	if code, out, errs := configRun(t, `{"max_age": "5d"}`, "config", "--spool", t.TempDir()); code != 0 || !strings.Contains(out, " 5d ") {
		t.Errorf(`{"max_age": "5d"}: exit %d\n%s%s`, code, out, errs)
	}
}

// mxflush config shows what flush would use, as an operator writes it: the
// EHLO name (this host's name, not ""), durations as written (5d, not
// 120h0m0s); with --json on the command line, one JSON object.
func TestConfigShowsEffectiveValues(t *testing.T) {
	t.Setenv("MXFLUSH_CONFIG", "")
	host, _ := os.Hostname()
	code, out, errs := configRun(t, "", "config", "--spool", t.TempDir(), "--max-age", "120h", "--retry-max", "90m")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	want := map[string]string{"helo": host, "max-age": "5d", "retry-max": "1h30m", "retry-min": "5m", "warn-after": "0s"}
	if srv, err := mx.ServerFromResolvConf("/etc/resolv.conf"); err == nil {
		want["dns"] = srv
	}
	for flag, want := range want {
		if v, _ := row(t, out, flag); v != want {
			t.Errorf("--%s shows %q, want %q", flag, v, want)
		}
	}
	code, out, errs = configRun(t, "", "config", "--spool", t.TempDir(), "--json")
	var v struct {
		Settings []struct{ Flag, Value, From string }
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || len(v.Settings) < 10 {
		t.Fatalf("config --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	for _, s := range v.Settings {
		if s.Flag == "--max-age" && (s.Value != "5d" || s.From != "default") {
			t.Errorf("config --json: %+v, want 5d from default", s)
		}
	}
}
