package main

import (
	"strings"
	"testing"
)

// No environment variable turns a flush into a no-op: kong binds every flag
// to an MXFLUSH_ variable, and MXFLUSH_VERSION=anything once printed a
// version and exited 0 with nothing sent (MXFLUSH_DRY_RUN=1 would have
// planned and sent nothing, exit 0 too).
func TestFlushNoEnvironmentVariableMakesItANoOp(t *testing.T) {
	for _, env := range []string{"MXFLUSH_VERSION", "MXFLUSH_DRY_RUN"} {
		t.Run(env, func(t *testing.T) {
			w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
			w.enqueue("alice@example.test", msg("env"), "bob@a.test")
			t.Setenv(env, "1")
			code, out, errs := w.flush()
			if code != 0 || w.received() != 1 {
				t.Errorf("%s=1: exit %d, %d message(s) received, want exit 0 and 1\n%s%s", env, code, w.received(), out, errs)
			}
			if strings.Contains(out, version) && !strings.Contains(out, "total") {
				t.Errorf("%s=1 printed the version instead of a summary:\n%s", env, out)
			}
		})
	}
}
