//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// rssInnerEnv marks the fresh copy of the test binary that measures (not
// MXFLUSH_*: TestMain drops those).
const rssInnerEnv = "MXF_TEST_RSS_INNER"

// Submission streams: a 200 MB message goes into the spool with the
// built binary's peak RSS (getrusage of the child after Wait) under 32 MB,
// for enqueue and for sendmail (which adds fields). No timing is measured.
//
// Linux keeps, across exec, the larger of the old and the new memory's
// peak in ru_maxrss, and os/exec starts a child with vfork, so the child's
// figure counts this process's own peak too, which the other tests make
// large (68 MB). So the measurement runs in a fresh copy of the test
// binary that runs only this test (about 10 MB then).
func TestSubmitStreamsPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 400 MB to the temporary directory")
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory counts in the peak RSS")
	}
	if os.Getenv(rssInnerEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSubmitStreamsPeakRSS$", "-test.v")
		cmd.Env = append(os.Environ(), rssInnerEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("fresh test process:\n%s", out)
		if err != nil {
			t.Fatalf("the measurement failed: %v", err)
		}
		return
	}
	const size = 200 << 20
	line := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2) + "\r\n")
	for _, cmd := range [][]string{{"enqueue", "-f", "a@example.test", "b@a.test"}, {"sendmail", "-i", "b@a.test"}} {
		t.Run(cmd[0], func(t *testing.T) {
			sp := filepath.Join(t.TempDir(), "spool")
			c := exec.Command(binary(t), append([]string{"--spool", sp, "--max-message-size", "0"}, cmd...)...)
			var stderr bytes.Buffer
			c.Stdout, c.Stderr = io.Discard, &stderr
			in, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				defer in.Close()
				io.WriteString(in, "From: a@example.test\r\nTo: b@a.test\r\nSubject: big\r\n\r\n")
				chunk := bytes.Repeat(line, (64<<10)/len(line))
				for n := 0; n < size; n += len(chunk) {
					if _, err := in.Write(chunk); err != nil {
						return
					}
				}
			}()
			if err := c.Wait(); err != nil {
				t.Fatalf("%v: %s", err, stderr.String())
			}
			peak := c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // kilobytes on Linux
			t.Logf("%s of 200 MB: peak RSS %.1f MB", cmd[0], float64(peak)/1e6)
			if peak >= 32<<20 {
				t.Errorf("peak RSS %d octets, want under 32 MiB", peak)
			}
			ents, _ := os.ReadDir(filepath.Join(sp, "new"))
			if len(ents) != 1 {
				t.Fatalf("new/ has %d files", len(ents))
			}
			if fi, _ := ents[0].Info(); fi.Size() < size {
				t.Errorf("queued file of %d octets, want over %d", fi.Size(), size)
			}
		})
	}
}
