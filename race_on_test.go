//go:build race

package main

// raceEnabled: the race detector's shadow memory adds to every process's
// peak RSS, so memory bounds are not measured under it.
const raceEnabled = true
