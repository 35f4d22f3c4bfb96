package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// jsonOnError is stderr for a flush --json while its command line and
// config file are parsed: it passes everything to stderr and keeps the
// last message, so that a failure there also prints one JSON object on
// stdout, {"exit_code": N, "error": "..."}, as every later exit of flush
// --json does. Once the command runs (done), it prints nothing.
type jsonOnError struct {
	stderr, stdout io.Writer
	last           bytes.Buffer
	done           bool
}

func (w *jsonOnError) Write(p []byte) (int, error) {
	if !w.done {
		w.last.Reset()
		w.last.Write(p)
	}
	return w.stderr.Write(p)
}

// finish prints the JSON object for an exit before the command ran.
func (w *jsonOnError) finish(code int) {
	if w.done || code == 0 {
		return
	}
	msg := strings.TrimSpace(strings.TrimPrefix(w.last.String(), "mxflush: "))
	json.NewEncoder(w.stdout).Encode(struct {
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	}{code, msg})
}

// earlyJSON returns stderr wrapped in a jsonOnError when args are a flush
// with --json (on the command line, or MXFLUSH_JSON), else stderr itself.
func earlyJSON(args []string, stdout, stderr io.Writer) io.Writer {
	end := len(args)
	if i := slices.Index(args, "--"); i >= 0 {
		end = i
	}
	words := args[:end]
	if !slices.Contains(words, "flush") {
		return stderr
	}
	asJSON := slices.Contains(words, "--json")
	if v, ok := os.LookupEnv("MXFLUSH_JSON"); ok {
		if b, err := strconv.ParseBool(v); err == nil && b {
			asJSON = true
		}
	}
	if !asJSON {
		return stderr
	}
	return &jsonOnError{stderr: stderr, stdout: stdout}
}
