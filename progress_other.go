//go:build !linux

package main

import "io"

// isTerminal is false outside Linux: no progress line is drawn there.
func isTerminal(w io.Writer) bool { return false }

// terminalWidth is 0 (unknown) outside Linux.
func terminalWidth(w io.Writer) int { return 0 }
