package main

import (
	"fmt"
	"io"
	"strings"
)

// sendmailMode is what a sendmail command line asks for.
type sendmailMode int

const (
	modeDeliver sendmailMode = iota // -bm (the default): read a message on stdin and queue it
	modeList                        // -bp: list the queue, like mailq
	modeFlush                       // -q: run the queue once
	modeSMTP                        // -bs: an SMTP dialog on stdin and stdout
)

// sendmailOpts is a parsed sendmail command line.
type sendmailOpts struct {
	mode     sendmailMode
	headers  bool    // -t: recipients from To, Cc, Bcc
	from     *string // -f ADDR or -fADDR (also -r, its old name)
	fullName string  // -F NAME or -FNAME: the name in an added From field
	rcpts    []string
}

// ignoredWithValue are the letters of the options accepted and ignored
// with their value: -B TYPE, and nullmailer's compatibility set -C FILE,
// -d DEBUG, -h COUNT, -L TAG, -N DSN, -O OPTION, -p PROTOCOL, -R RETURN,
// -V ENVID, -X LOGFILE.
const ignoredWithValue = "BCdhLNOpRVX"

// parseSendmail parses the options programs pass to sendmail(8), in the
// forms sendmail and Postfix accept: "-f ADDR" and "-fADDR", "-F NAME" and
// "-FNAME", "-B TYPE" and "-BTYPE". Accepted and ignored: -i and -oi (a
// lone dot never ends the message here: stdin is read to its end), every
// other -oX option (-oem, -odi, ...), -B (the body type: 8-bit bodies are
// checked at delivery, RFC 6152), and the options nullmailer 2.2's
// sendmail(1) ignores for compatibility: -C FILE, -d DEBUG, -h COUNT,
// -L TAG, -N DSN, -O OPTION, -p PROTOCOL, -R RETURN, -V ENVID and
// -X LOGFILE (each with its value, attached or as the next word), -n, -U
// and -v. "--" ends the options; options may be grouped when they take no
// value ("-ti"). Anything else is an error naming the option, for exit 64.
func parseSendmail(args []string) (sendmailOpts, error) {
	var o sendmailOpts
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.rcpts = append(o.rcpts, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			o.rcpts = append(o.rcpts, a)
			continue
		}
		// value returns the option's value: the rest of this word, or the next word.
		value := func(rest string) (string, error) {
			if rest != "" {
				return rest, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("sendmail: option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "-bm":
			o.mode = modeDeliver
		case a == "-bp":
			o.mode = modeList
		case a == "-bs":
			o.mode = modeSMTP
		case a == "-q":
			o.mode = modeFlush
		case strings.HasPrefix(a, "-q"):
			return o, fmt.Errorf("sendmail: %s: a queue interval is a daemon's; mxflush runs the queue once per -q (use cron or a systemd timer)", a)
		case strings.HasPrefix(a, "-b"):
			return o, fmt.Errorf("sendmail: %s: unsupported mode (only -bm, -bs and -bp)", a)
		case strings.HasPrefix(a, "-o"):
			if a == "-o" {
				return o, fmt.Errorf("sendmail: -o needs an option letter, as in -oi")
			}
			// -oi, -oem, -odi, -oQ...: accepted, no effect here.
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			v, err := value(a[2:])
			if err != nil {
				return o, err
			}
			o.from = &v
		case strings.HasPrefix(a, "-F"):
			v, err := value(a[2:])
			if err != nil {
				return o, err
			}
			o.fullName = v
		case len(a) >= 2 && strings.ContainsRune(ignoredWithValue, rune(a[1])):
			if _, err := value(a[2:]); err != nil {
				return o, err
			}
		default:
			for _, c := range a[1:] { // grouped flags without values: -ti, -it
				switch c {
				case 't':
					o.headers = true
				case 'i', 'n', 'U', 'v': // -n (no aliasing), -U (initial submission), -v (verbose): ignored
				default:
					return o, fmt.Errorf("sendmail: unknown option -%c in %q (supported: -t -i -oi -f ADDR -F NAME -bm -bs -bp -q --; ignored: -oX, -B -C -d -h -L -N -O -p -R -V -X with a value, -n -U -v)", c, a)
				}
			}
		}
	}
	return o, nil
}

// sendmailUsage is what sendmail --help prints.
const sendmailUsage = `Usage: sendmail [OPTIONS] [--] [RCPT...]   (mxflush's sendmail interface)

Queues the message on stdin in the spool (MXFLUSH_SPOOL, else
/var/spool/mxflush); the next mxflush flush delivers it.

  -t              recipients from To, Cc and Bcc too; Bcc is removed
  -f ADDR, -r     envelope sender (default: the message's Sender or From,
                  else the invoking user at the origin)
  -F NAME         the name in a From field added to a message without one
  -i, -oi         accepted: a lone dot never ends the message
  -bm             queue the message (the default)
  -bs             speak SMTP on stdin and stdout (Symfony, Laravel)
  -bp             list the queue, as mailq
  -q              run one flush of the spool
  --              the rest are recipients
  Accepted and ignored: -oX, -B TYPE, -C FILE, -d X, -h N, -L TAG, -N DSN,
  -O OPT, -p PROTO, -R RET, -V ENVID, -X FILE, -n, -U, -v.

mxflush's own flags (--spool DIR, --config FILE, ...) go before the word
sendmail: mxflush --spool DIR sendmail -t. See mxflush --help.
`

// sendmailEarly answers what needs no spool: --help (usage on stdout,
// exit 0), and mxflush's flags given after the word sendmail, where
// sendmail's syntax reads them as options (exit 64, saying where they go).
// done is false for anything else.
func sendmailEarly(args []string, stdout, stderr io.Writer) (code int, done bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if a == "--help" {
			io.WriteString(stdout, sendmailUsage)
			return 0, true
		}
		name, _, _ := strings.Cut(a, "=")
		fmt.Fprintf(stderr, "mxflush: sendmail: %s is a flag of mxflush, not a sendmail option: give it before the word sendmail (mxflush %s ... sendmail ...), or set it in MXFLUSH_%s\n",
			name, name, strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(name, "--"), "-", "_")))
		return 64, true
	}
	return 0, false
}
