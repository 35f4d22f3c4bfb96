package main

import "fmt"

// EnqueueCmd is `mxflush enqueue`: one message from stdin into new/.
type EnqueueCmd struct {
	From    *string  `short:"f" help:"Envelope sender; an empty one (-f \"\") or <> is the null sender (default: the message's Sender or From)." placeholder:"SENDER"`
	Headers bool     `short:"t" help:"Take recipients from To, Cc and Bcc (added to any given), and remove Bcc."`
	Rcpts   []string `arg:"" optional:"" name:"rcpt" help:"Envelope recipients."`
}

// Run reads the message, builds and checks the envelope, and enqueues it
// through the submission path (submit.go). A bad address exits 65
// (EX_DATAERR) and nothing is written.
func (c *EnqueueCmd) Run(g *Globals) error {
	s, err := newSubmitter(g)
	if err != nil {
		return err
	}
	id, err := s.submit(submission{from: c.From, rcpts: c.Rcpts, headers: c.Headers}, g.stdin)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, id)
	return nil
}
