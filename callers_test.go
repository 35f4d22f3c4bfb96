package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The README's table of callers: each program's exact sendmail command
// line and the shape of what it writes on stdin, with the envelope and
// the header fields the queued message must have. The host's origin is
// web1.test and root is aliased to admin@a.test. Header addresses without
// a domain are qualified (the aliases apply to the envelope only).
func TestSendmailCallers(t *testing.T) {
	user := localUser()
	for _, tc := range []struct {
		name     string
		args     []string
		in       string
		from     string
		to       []string
		fields   []string // in the stored header section
		noFields []string // not in it
	}{
		{
			// Debian cron 3.0pl1 (config.h MAILARGS, do_command.c): MAILTO=root,
			// no -f, From without a domain.
			name: "debian cron",
			args: []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
			in:   "From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> /usr/local/bin/backup\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\nbackup failed\n",
			from: "root@web1.test", to: []string{"admin@a.test"},
			fields:   []string{"From: root@web1.test (Cron Daemon)\n", "To: root@web1.test\n", "Date: ", "Message-ID: <20261129150000."},
			noFields: []string{"From: \"CronDaemon\""},
		},
		{
			// cronie (do_command.c MAILFMT), -t and -f of the job's user.
			name: "cronie",
			args: []string{"-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"},
			in:   "From: \"(Cron Daemon)\" <root>\nTo: root\nSubject: Cron <root@web1> df -h\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nAuto-Submitted: auto-generated\nPrecedence: bulk\n\n/dev/vda 91%\n",
			from: "root@web1.test", to: []string{"admin@a.test"},
			fields: []string{"From: \"(Cron Daemon)\" <root@web1.test>\n", "To: root@web1.test\n", "Auto-Submitted: auto-generated\n", "Date: ", "Message-ID: "},
		},
		{
			// git send-email --envelope-sender (git-send-email.perl: -f first, then -i and the recipients).
			name: "git send-email",
			args: []string{"-f", "dev@example.test", "-i", "maint@a.test", "list@b.test"},
			in:   "From: Dev <dev@example.test>\nTo: maint@a.test\nCc: list@b.test\nSubject: [PATCH] fix\nDate: Sun, 29 Nov 2026 12:00:00 +0000\nMessage-ID: <20261129120000.1-dev@example.test>\nX-Mailer: git-send-email 2.39.5\nMIME-Version: 1.0\n\n---\n a | 1 +\n",
			from: "dev@example.test", to: []string{"maint@a.test", "list@b.test"},
			fields:   []string{"Date: Sun, 29 Nov 2026 12:00:00 +0000\n", "Message-ID: <20261129120000.1-dev@example.test>\n"},
			noFields: []string{"Message-ID: <2026112915"},
		},
		{
			// git send-email --sendmail-cmd=sendmail (git 2.33+): "$cmd" -i RCPT..., no -f.
			name: "git send-email --sendmail-cmd",
			args: []string{"-i", "maint@a.test"},
			in:   "From: Dev <dev@example.test>\nTo: maint@a.test\nSubject: [PATCH] fix\nDate: Sun, 29 Nov 2026 12:00:00 +0000\nMessage-ID: <20261129120000.2-dev@example.test>\n\npatch\n",
			from: "dev@example.test", to: []string{"maint@a.test"},
			fields: []string{"From: Dev <dev@example.test>\n"},
		},
		{
			// PHP mail(): sendmail_path "sendmail -t -i"; To and Subject first, then the additional headers.
			name: "php mail()",
			args: []string{"-t", "-i"},
			in:   "To: user@a.test\nSubject: Welcome\nX-PHP-Originating-Script: 33:signup.php\nFrom: app@example.test\nBcc: audit@b.test\n\nHello\n",
			from: "app@example.test", to: []string{"user@a.test", "audit@b.test"},
			fields:   []string{"To: user@a.test\n", "Date: ", "Message-ID: "},
			noFields: []string{"Bcc", "audit@"},
		},
		{
			// PHP mail() with additional_params "-fbounce@example.test".
			name: "php mail() with -f",
			args: []string{"-t", "-i", "-fbounce@example.test"},
			in:   "To: user@a.test\nSubject: Welcome\nFrom: app@example.test\n\nHello\n",
			from: "bounce@example.test", to: []string{"user@a.test"},
			fields: []string{"From: app@example.test\n"},
		},
		{
			// Symfony Mailer's SendmailTransport default (and Laravel's, with -i):
			// an SMTP dialog on stdin (see TestSendmailBSSymfony for the real client).
			name: "symfony -bs",
			args: []string{"-bs"},
			in:   "EHLO [127.0.0.1]\r\nMAIL FROM:<app@example.test>\r\nRCPT TO:<user@a.test>\r\nRCPT TO:<root@web1.test>\r\nDATA\r\nFrom: App <app@example.test>\r\nTo: user@a.test\r\nSubject: Order\r\nMessage-ID: <abc@example.test>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\nThanks\r\n.\r\nQUIT\r\n",
			from: "app@example.test", to: []string{"user@a.test", "admin@a.test"},
			fields:   []string{"Message-ID: <abc@example.test>\r\n", "Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"},
			noFields: []string{"Message-ID: <2026"},
		},
		{
			// A script: echo "disk full on web1" | sendmail ops@a.test
			name: "bare body",
			args: []string{"ops@a.test"},
			in:   "disk full on web1\n",
			from: user + "@web1.test", to: []string{"ops@a.test"},
			fields: []string{"From: <" + user + "@web1.test>\n", "To: ops@a.test\n", "Date: ", "Message-ID: "},
		},
		{
			// mail(1) of bsd-mailx: sendmail -i -- RCPT, with the To and Subject it writes.
			name: "bsd-mailx mail(1)",
			args: []string{"-i", "--", "ops@a.test"},
			in:   "To: ops@a.test\nSubject: backup done\n\nall well\n",
			from: user + "@web1.test", to: []string{"ops@a.test"},
			fields: []string{"From: <" + user + "@web1.test>\n", "Subject: backup done\n", "Date: ", "Message-ID: "},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			aliases := filepath.Join(dir, "aliases")
			os.WriteFile(aliases, []byte("root: admin@a.test\n"), 0o644)
			sp := filepath.Join(dir, "spool")
			args := append([]string{"--spool", sp, "--origin", "web1.test", "--aliases", aliases, "sendmail"}, tc.args...)
			code, out, errs := runAt(tc.in, args...)
			if code != 0 || (out != "" && tc.args[0] != "-bs") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and nothing printed", code, out, errs)
			}
			m, msg := queued(t, sp)
			if m.From != tc.from || !reflect.DeepEqual(m.To, tc.to) {
				t.Errorf("envelope %q -> %q, want %q -> %q", m.From, m.To, tc.from, tc.to)
			}
			header, _, _ := strings.Cut(strings.ReplaceAll(msg, "\r\n", "\n"), "\n\n")
			header += "\n"
			for _, f := range tc.fields {
				if !strings.Contains(header, strings.ReplaceAll(f, "\r\n", "\n")) {
					t.Errorf("no %q in the header section:\n%s", f, header)
				}
			}
			for _, f := range tc.noFields {
				if strings.Contains(header, f) {
					t.Errorf("%q in the header section:\n%s", f, header)
				}
			}
			for _, f := range []string{"From", "Date", "Message-ID"} {
				if n := strings.Count("\n"+header, "\n"+f+":"); n != 1 {
					t.Errorf("%d %s fields, want 1:\n%s", n, f, header)
				}
			}
		})
	}
}
