package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// The argument lists real programs pass to sendmail, parsed.
func TestParseSendmailRealCallers(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		args []string
		want sendmailOpts
	}{
		// Debian cron (vixie cron 3.0pl1, config.h):
		// #define MAILARGS "%s -FCronDaemon -i -B8BITMIME -oem %s" (MAILCMD, the MAILTO user).
		{"debian cron", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
			sendmailOpts{fullName: "CronDaemon", rcpts: []string{"root"}}},
		// cronie (src/do_command.c, MAILFMT): "%s -FCronDaemon -i -odi -oem -oi -t -f %s"
		// (MAILCMD, the MAILFROM or the job's user).
		{"cronie", []string{"-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"},
			sendmailOpts{fullName: "CronDaemon", headers: true, from: str("root")}},
		// git send-email (git-send-email.perl, send_message): @sendmail_parameters = ('-i', @recipients),
		// with ('-f', $raw_from) put first when --envelope-sender is set.
		{"git send-email", []string{"-f", "dev@example.test", "-i", "maint@a.test", "list@b.test"},
			sendmailOpts{from: str("dev@example.test"), rcpts: []string{"maint@a.test", "list@b.test"}}},
		{"git send-email without envelope sender", []string{"-i", "maint@a.test"},
			sendmailOpts{rcpts: []string{"maint@a.test"}}},
		// PHP: sendmail_path defaults to "sendmail -t -i" (php.ini-production); mail()'s
		// additional_params are appended, commonly "-fbounce@example.test".
		{"php", []string{"-t", "-i"}, sendmailOpts{headers: true}},
		{"php with -f", []string{"-t", "-i", "-fbounce@example.test"}, sendmailOpts{headers: true, from: str("bounce@example.test")}},
		{"grouped and --", []string{"-ti", "-bm", "--", "-odd@a.test"}, sendmailOpts{headers: true, rcpts: []string{"-odd@a.test"}}},
		{"mailq", []string{"-bp"}, sendmailOpts{mode: modeList}},
		// Symfony Mailer's SendmailTransport default "/usr/sbin/sendmail -bs";
		// Laravel's config/mail.php "/usr/sbin/sendmail -bs -i".
		{"symfony", []string{"-bs"}, sendmailOpts{mode: modeSMTP}},
		{"laravel", []string{"-bs", "-i"}, sendmailOpts{mode: modeSMTP}},
		{"flush", []string{"-q"}, sendmailOpts{mode: modeFlush}},
		// nullmailer 2.2's sendmail(1) "ignored for compatibility", each with its
		// value attached or as the next word, and the flags without one.
		{"ignored with values", []string{"-C", "/etc/mail/sendmail.cf", "-d0.1", "-h", "17", "-Lapp", "-N", "never", "-OTimeout=1",
			"-p", "smtp", "-R", "hdrs", "-Venv1", "-X", "/tmp/log", "bob@a.test"}, sendmailOpts{rcpts: []string{"bob@a.test"}}},
		{"ignored flags", []string{"-n", "-U", "-v", "-vti", "bob@a.test"}, sendmailOpts{headers: true, rcpts: []string{"bob@a.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSendmail(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseSendmail(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
}

// Unknown options and missing values are clear errors.
func TestParseSendmailErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-x"}, "unknown option -x"},
		{[]string{"-tx"}, "unknown option -x"},
		{[]string{"-C"}, "-C needs a value"},
		{[]string{"-X"}, "-X needs a value"},
		{[]string{"-q5m"}, "-q5m"},
		{[]string{"-f"}, "-f needs a value"},
		{[]string{"-q30m"}, "queue interval"},
		{[]string{"-bd"}, "unsupported mode"},
		{[]string{"-o"}, "-o needs an option letter"},
	} {
		if _, err := parseSendmail(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSendmail(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// Invoked as sendmail or mailq, the binary runs the sendmail command (on
// the spool of the settings, else /var/spool/mxflush: see
// TestSendmailSpoolFromConfig); as anything else, nothing changes.
func TestSendmailArgs(t *testing.T) {
	for _, tc := range []struct {
		argv0      string
		args, want []string
	}{
		{"/usr/sbin/sendmail", []string{"-t", "-i"}, []string{"sendmail", "-t", "-i"}},
		{"sendmail", []string{"-i", "bob@a.test"}, []string{"sendmail", "-i", "bob@a.test"}},
		{"/usr/bin/mailq", nil, []string{"sendmail", "-bp"}},
		{"/usr/bin/mxflush", []string{"queue"}, []string{"queue"}},
	} {
		got, _ := sendmailArgs(tc.argv0, tc.args)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("sendmailArgs(%q, %q) = %q, want %q", tc.argv0, tc.args, got, tc.want)
		}
	}
}

// Each caller's exact command line queues the message with the right
// envelope, prints nothing, and adds Date and Message-ID only when missing.
func TestSendmailEnqueue(t *testing.T) {
	t.Setenv("MXFLUSH_ORIGIN", "relay.test")
	const bare = "From: Cron Daemon <root@relay.test>\nTo: root\nSubject: cron job\n\noutput\n"
	const dated = "From: dev@example.test\nTo: maint@a.test\nCc: list@b.test\nBcc: hidden@c.test\nDate: Sun, 29 Nov 2026 12:00:00 +0000\nMessage-ID: <x@example.test>\nSubject: [PATCH] fix\n\npatch\n"
	for _, tc := range []struct {
		name     string
		args     []string
		msg      string
		from     string
		to       []string
		added    bool
		noHeader string
	}{
		{"debian cron", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}, bare,
			"root@relay.test", []string{"root@relay.test"}, true, ""},
		{"git send-email", []string{"-f", "dev@example.test", "-i", "maint@a.test", "list@b.test"}, dated,
			"dev@example.test", []string{"maint@a.test", "list@b.test"}, false, ""},
		{"php", []string{"-t", "-i"}, dated,
			"dev@example.test", []string{"maint@a.test", "list@b.test", "hidden@c.test"}, false, "Bcc:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := filepath.Join(t.TempDir(), "spool")
			code, out, errs := runAt(tc.msg, append([]string{"--spool", sp, "sendmail"}, tc.args...)...)
			if code != 0 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and nothing printed", code, out, errs)
			}
			ents, _ := os.ReadDir(filepath.Join(sp, "new"))
			if len(ents) != 1 {
				t.Fatalf("new/ has %d files, want 1", len(ents))
			}
			m, err := openSpool(t, sp).Load(spool.QueueNew, ents[0].Name())
			if err != nil {
				t.Fatal(err)
			}
			if m.From != tc.from || !reflect.DeepEqual(m.To, tc.to) {
				t.Errorf("envelope %q -> %q, want %q -> %q", m.From, m.To, tc.from, tc.to)
			}
			b, _ := os.ReadFile(filepath.Join(sp, "new", ents[0].Name()))
			file := string(b)
			hasDate := strings.Contains(file, "\nDate: "+fixtureNow.Format("Mon, 02 Jan 2006 15:04:05 -0700")+"\n")
			hasID := strings.Contains(file, "\nMessage-ID: <20261129150000.") && strings.Contains(file, "@relay.test>\n")
			if hasDate != tc.added || hasID != tc.added || strings.Count(file, "\nDate: ") != 1 || strings.Count(file, "\nMessage-ID: ") != 1 {
				t.Errorf("want Date and Message-ID added: %v; file:\n%s", tc.added, file)
			}
			if tc.noHeader != "" && strings.Contains(file, tc.noHeader) {
				t.Errorf("%s kept in the queued file:\n%s", tc.noHeader, file)
			}
		})
	}
}

// A message without From gets one from -F and the default sender; -bp
// lists the queue; a bad option exits 64 and queues nothing.
func TestSendmailFromListAndErrors(t *testing.T) {
	t.Setenv("MXFLUSH_ORIGIN", "relay.test")
	sp := filepath.Join(t.TempDir(), "spool")
	code, _, errs := runAt("To: ops@a.test\nSubject: disk\n\nfull\n", "--spool", sp, "sendmail", "-F", "Disk Monitor", "-t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, out, _ := runAt("", "--spool", sp, "sendmail", "-bp")
	if code != 0 || !strings.Contains(out, "ops@a.test") || !strings.Contains(out, "1 message(s)") {
		t.Fatalf("-bp: exit %d, %q", code, out)
	}
	ents, _ := os.ReadDir(filepath.Join(sp, "new"))
	b, _ := os.ReadFile(filepath.Join(sp, "new", ents[0].Name()))
	if !strings.Contains(string(b), "\nFrom: \"Disk Monitor\" <") || !strings.Contains(string(b), "@relay.test>\n") {
		t.Errorf("no From field with -F's name added:\n%s", b)
	}
	code, _, errs = runAt("To: ops@a.test\n\nx\n", "--spool", sp, "sendmail", "-G", "ops@a.test")
	if code != 64 || !strings.Contains(errs, "unknown option -G") {
		t.Errorf("exit %d, %q; want 64 and the option named", code, errs)
	}
	if ents, _ := os.ReadDir(filepath.Join(sp, "new")); len(ents) != 1 {
		t.Errorf("new/ has %d files after a refused call, want 1", len(ents))
	}
}

// -q runs one flush of the spool. The lock is held here, so the flush
// stops before any lookup (no network at all): 75 and the lock holder, or
// 78 on a machine without /etc/resolv.conf, which flush reads first.
func TestSendmailQueueRun(t *testing.T) {
	t.Setenv("MXFLUSH_HELO", "relay.test")
	sp := filepath.Join(t.TempDir(), "spool")
	unlock, err := openSpool(t, sp).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, errs := runAt("", "--spool", sp, "sendmail", "-q")
	if !(code == 75 && strings.Contains(errs, "locked by another flush")) && !(code == 78 && strings.Contains(errs, "no DNS server")) {
		t.Fatalf("exit %d, %q; want flush's 75 (locked)", code, errs)
	}
}

// sendmail --help prints sendmail's options (it said "unknown option --"),
// with no spool needed; mxflush's own flags after the word sendmail are
// refused with where they go (it said "missing flags: --spool=DIR"); a
// command without any spool says how to name one.
func TestSendmailHelpAndMisplacedFlags(t *testing.T) {
	t.Setenv("MXFLUSH_SPOOL", "")
	w := &world{t: t}
	code, out, errs := w.run("", "sendmail", "--help")
	if code != 0 || !strings.Contains(out, "-bs") || !strings.Contains(out, "before the word") {
		t.Errorf("sendmail --help: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = w.run("x", "sendmail", "--spool", t.TempDir(), "bob@example.test")
	if code != 64 || !strings.Contains(errs, "--spool is a flag of mxflush") || !strings.Contains(errs, "before the word sendmail") {
		t.Errorf("sendmail --spool DIR: exit %d, want 64 saying where --spool goes\n%s", code, errs)
	}
	code, _, errs = w.run("", "flush")
	if code != 64 || !strings.Contains(errs, "give --spool DIR or MXFLUSH_SPOOL") {
		t.Errorf("flush without a spool: exit %d\n%s", code, errs)
	}
}

// Invoked as mailq or sendmail, the spool comes from the settings like
// any flag's: MXFLUSH_SPOOL, else the config file's spool key, else
// /var/spool/mxflush. (The spool used to be put on the command line, where
// it beat the config file's key.)
func TestSendmailSpoolFromConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	openSpool(t, dir)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"spool": "`+dir+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MXFLUSH_SPOOL", "")
	os.Unsetenv("MXFLUSH_SPOOL") // restored by t.Setenv's cleanup
	t.Setenv("MXFLUSH_CONFIG", cfg)
	args, asSendmail := sendmailArgs("/usr/bin/mailq", nil)
	var out, errb bytes.Buffer
	code := runGlobals(args, Globals{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now, asSendmail: asSendmail})
	if code != 0 || !strings.Contains(out.String(), "no messages in") {
		t.Errorf("mailq with the config file's spool: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// sendmail removes a Bcc field even without -t, as Postfix's does: a
// program that names the recipients itself (and writes Bcc for its own
// records) must not show the blind copies to everyone. enqueue without
// -t keeps the message byte for byte.
func TestSendmailStripsBccWithoutT(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	w := &world{t: t}
	in := "From: app@example.test\nTo: a@a.test\nBcc: hidden@b.test\nSubject: x\n\nbody\n"
	if code, _, errs := w.run(in, "--spool", sp, "sendmail", "a@a.test", "hidden@b.test"); code != 0 {
		t.Fatalf("sendmail: exit %d\n%s", code, errs)
	}
	ents, _ := os.ReadDir(filepath.Join(sp, "new"))
	if len(ents) != 1 {
		t.Fatalf("new/ has %d files", len(ents))
	}
	b, _ := os.ReadFile(filepath.Join(sp, "new", ents[0].Name()))
	if strings.Contains(string(b), "Bcc:") || !strings.Contains(string(b), "X-Envelope-To: <hidden@b.test>") {
		t.Errorf("stored message:\n%s\nwant no Bcc field, hidden@b.test in the envelope", b)
	}
	if code, _, errs := w.run(in, "--spool", sp, "enqueue", "a@a.test"); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s", code, errs)
	}
}
