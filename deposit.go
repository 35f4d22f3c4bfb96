package main

import (
	"errors"
	"io"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// deposit writes one submitted message into the spool's new/ (spool.Open,
// then Enqueue: tmp/, fsync, rename) and returns its ID. Errors are
// *exitError wrapping the cause: 65 (EX_DATAERR) for an address or message
// the spool refuses, 73 (EX_CANTCREAT) for a spool that cannot be created
// or written, or an error from msg (nothing is left in tmp/ then).
func deposit(g *Globals, env spool.Envelope, msg io.Reader) (id string, err error) {
	sp, err := spool.Open(g.Spool)
	if err != nil {
		return "", exitf(report.ExCantCreat, "%w", err)
	}
	id, err = sp.Enqueue(env, msg)
	if err != nil {
		var ae *addr.Error
		var pe *spool.ParseError
		if errors.As(err, &ae) || errors.As(err, &pe) {
			return "", exitf(report.ExDataErr, "%w", err)
		}
		return "", exitf(report.ExCantCreat, "%w", err)
	}
	return id, nil
}
