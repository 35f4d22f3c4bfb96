package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopContexts returns the two contexts of a flush: stop, done when the run
// must open no new transaction (maxRuntime elapsed, when positive, a first
// SIGINT/SIGTERM, or stopNow; its cause says which, for the summary), and
// abort, done at a second signal, which cuts the I/O of the transactions
// in flight. stopNow stops the run as a first signal would, with cause
// (the first cause wins). release stops the timer and the signal handling.
func stopContexts(maxRuntime time.Duration) (abort, stop context.Context, stopNow func(cause error), release func()) {
	abort, cancelAbort := context.WithCancel(context.Background())
	stop, cancelStop := context.WithCancelCause(context.Background())
	var timer *time.Timer
	if maxRuntime > 0 {
		timer = time.AfterFunc(maxRuntime, func() {
			cancelStop(fmt.Errorf("after --max-runtime %v", maxRuntime))
		})
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					cancelStop(fmt.Errorf("by %v", signalName(sig)))
				} else {
					cancelAbort()
				}
			case <-done:
				return
			}
		}
	}()
	return abort, stop, cancelStop, func() {
		if timer != nil {
			timer.Stop()
		}
		signal.Stop(sigs)
		close(done)
		cancelStop(nil)
		cancelAbort()
	}
}

// signalName is "SIGTERM" or "SIGINT".
func signalName(sig os.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}
