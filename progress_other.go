//go:build !linux

package main

import "io"

// isTerminal is false outside Linux: no progress line is drawn there.
func isTerminal(w io.Writer) bool { return false }
