package main

import (
	"errors"
	"io/fs"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// useSpool is spool.Open or spool.OpenReadOnly with their errors as exit
// codes: 66 for a missing directory, 73 for one that cannot be used.
func useSpool(g *Globals, write bool) (*spool.Spool, error) {
	open := spool.OpenReadOnly
	if write {
		open = spool.Open
	}
	sp, err := open(g.Spool)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitf(exNoInput, "%v", err)
	} else if err != nil {
		return nil, exitf(report.ExCantCreat, "%v", err)
	}
	return sp, nil
}
