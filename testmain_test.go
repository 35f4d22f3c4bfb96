package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain isolates the tests from the machine: every MXFLUSH_* variable
// of the caller's environment is dropped, and MXFLUSH_CONFIG names an empty
// config file, so that an /etc/mxflush/config.json (or an operator's
// MXFLUSH_SPOOL) cannot change what the in-process runs and the built
// binary do. Tests that exercise these set their own with t.Setenv.
func TestMain(m *testing.M) {
	os.Exit(isolated(m))
}

func isolated(m *testing.M) int {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MXFLUSH_") {
			os.Unsetenv(k)
		}
	}
	dir, err := os.MkdirTemp("", "mxflush-test-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	os.Setenv("MXFLUSH_CONFIG", cfg)
	// Nor may the machine's /etc/mxflush/aliases or its host name change
	// what a submission queues: no aliases file, and a fixed origin.
	os.Setenv("MXFLUSH_ALIASES", "")
	os.Setenv("MXFLUSH_ORIGIN", "origin.test")
	return m.Run()
}
