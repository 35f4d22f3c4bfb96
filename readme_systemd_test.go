package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's systemd units are the files in deploy/systemd/, and
// systemd-analyze verify accepts them (in a root directory holding the
// binary where ExecStart names it and a copy of the system's units), with
// nothing to warn about.
func TestReadmeSystemdUnits(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```ini\n(# /etc/systemd/system/(mxflush\\.[a-z]+)\n.*?)```").FindAllSubmatch(readme, -1)
	units := map[string]string{}
	for _, b := range blocks {
		units[string(b[2])] = string(b[1])
	}
	for _, name := range []string{"mxflush.service", "mxflush.timer", "mxflush.path"} {
		file, err := os.ReadFile(filepath.Join("deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		if units[name] != string(file) {
			t.Errorf("README's %s differs from deploy/systemd/%s:\n%s\n---\n%s", name, name, units[name], file)
		}
	}
	if strings.Contains(units["mxflush.service"], "ExecStart=mxflush") {
		t.Error("ExecStart names no path")
	}

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	sysUnits := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sysUnits, "sysinit.target")); err != nil {
		t.Skipf("no system units to verify against in %s", sysUnits)
	}
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "usr/lib/systemd", "etc/systemd/system", "var/spool/mxflush/new", "var/spool/mxflush/maildrop"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", sysUnits, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v %s", sysUnits, err, out)
	}
	if out, err := exec.Command("cp", binary(t), filepath.Join(root, "usr/local/bin/mxflush")).CombinedOutput(); err != nil {
		t.Fatalf("copying the binary: %v %s", err, out)
	}
	args := []string{"verify", "--root=" + root}
	for name, text := range units {
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "/etc/systemd/system/"+name)
	}
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
