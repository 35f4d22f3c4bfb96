package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// domainName is the i-th benchmark domain: d000.test, d001.test, ...
func domainName(i int) string { return fmt.Sprintf("d%03d.test", i) }

// body returns size octets of message text in 80-octet CRLF lines, like
// smtp-source's -l payload.
func body(size int) []byte {
	line := append(bytes.Repeat([]byte{'X'}, 78), '\r', '\n')
	var b bytes.Buffer
	for b.Len()+len(line) <= size {
		b.Write(line)
	}
	if r := size - b.Len(); r > 2 {
		b.Write(line[:r-2])
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// writeSpool fills dir/new with n messages, recipients spread round-robin
// over k domains, each message a few header fields and size octets of
// body, written straight into new/ as a maildir producer would. Other queue
// directories are created empty; anything left from an earlier run is
// removed first. It ends with sync(2), outside any measurement: producers
// fsync what they write, and dirty spool pages would otherwise be written
// back during the run, by the first fsync of a journal commit.
func writeSpool(dir string, n, k, size int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, d := range []string{"tmp", "new", "cur", "failed", "hold", "bad"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	text := body(size)
	var b bytes.Buffer
	for i := range n {
		b.Reset()
		dom := domainName(i % k)
		fmt.Fprintf(&b, "X-Envelope-From: <bench@source.test>\nX-Envelope-To: <u%d@%s>\n", i, dom)
		fmt.Fprintf(&b, "From: <bench@source.test>\r\nTo: <u%d@%s>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-Id: <%d@source.test>\r\n\r\n", i, dom, i)
		b.Write(text)
		name := "1764417600.M" + strconv.Itoa(i) + "P1.bench"
		if err := os.WriteFile(filepath.Join(dir, "new", name), b.Bytes(), 0o600); err != nil {
			return fmt.Errorf("writing the spool: %w", err)
		}
	}
	syscall.Sync()
	return nil
}
