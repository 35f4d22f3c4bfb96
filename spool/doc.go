// Package spool owns the maildir-style queue of outgoing mail on disk: the
// directory layout, unique file names, the envelope line syntax, the spool
// lock and atomic state changes.
//
// # Layout
//
//	DIR/          0711: others may pass through to maildrop/, never list
//	DIR/lock      0600: flock(2) target of Lock; holds the holder's pid
//	DIR/lock.I-of-N, DIR/lock.shards  0600: the locks of sharded runs (see Lock, WithShard)
//	DIR/journal   0600: the crash journal of delivered recipients (see Journal); empty after a clean run
//	DIR/journal.I-of-N  0600: the crash journal of shard I of N
//	DIR/tmp/      0700: files being written; renamed away when complete
//	DIR/new/      0700: ready, never attempted
//	DIR/cur/      0700: attempted at least once, waiting for a retry (carries state)
//	DIR/failed/   0700: permanently failed originals, kept for inspection
//	DIR/hold/     0700: held by the operator (mxflush hold, or mv): never scanned or sent
//	DIR/bad/      0700: files Scan or Pickup could not use, each with ID.reason beside it
//	DIR/maildrop/ 1730, group of the setgid binary: messages of other users (see Drop, Pickup)
//
// Everything but maildrop/ belongs to the spool's owner, files mode 0600:
// no other user can list, read or change them. Init makes this layout;
// Open and OpenReadOnly create nothing (a *MissingError), and Create, for
// enqueue by the owner, makes the queue directories it needs.
//
// A message file is named with a maildir unique name,
// "UNIXNANO.PpidRrandom.host" (no "/" or ":"), so any producer can write one
// without coordination, and keeps that name (its ID) in every directory.
// A name that is not printable UTF-8 (a control character, such as the
// newline of "x\nstatus=sent", which would forge a log line) is never read
// as a message: Scan moves the file to bad/ under a fresh unique name.
//
// # File format
//
// One file is one message: envelope lines first, then the RFC 5322 message
// exactly as it is to be sent. Leading lines whose field name starts with
// "X-Envelope-" (any case) are envelope lines; the first other line starts
// the message and must be a header field or an empty line. Envelope lines are
// never folded; LF and CRLF line endings are both accepted; the spool writes
// LF. Times are UTC RFC 3339 with second precision.
//
//	X-Envelope-From: <alice@example.test>          exactly one; <> = null sender
//	X-Envelope-To: <bob@example.test>              one per pending recipient, >= 1
//	X-Envelope-Id: 9f86d081884c7d659a2feaa0c55ad015  optional: the message's UID (see Envelope.UID)
//	X-Envelope-Arrival: 2026-11-29T12:00:00Z       optional (default: file mtime, Message.ArrivalFromMtime)
//	X-Envelope-Attempts: 2                         optional (default 0)
//	X-Envelope-Next-Attempt: 2026-11-29T12:05:00Z  optional (default: due now)
//	X-Envelope-Warned: 2026-11-29T16:00:00Z        optional: when the one delay warning (DSN) was enqueued
//	X-Envelope-Reply: <bob@example.test> 451 4.7.1 Greylisted   last reply for a pending recipient
//	X-Envelope-Failed: bounced <gone@example.test> 550 5.1.1 No such user   a recipient that failed permanently
//
// An X-Envelope-Failed line starts with a notice token, "bounced" (a DSN
// naming the recipient was enqueued to the sender before the line was
// written) or "not-bounced" (the sender is <>, or the run had
// --no-bounce), or with the address itself in files written before notices
// existed. The token comes before the address so no reply text can be
// mistaken for it.
//
// For example, a message deferred once for one of its two recipients:
//
//	X-Envelope-From: <alice@example.test>
//	X-Envelope-To: <carol@example.test>
//	X-Envelope-Arrival: 2026-11-29T12:00:00Z
//	X-Envelope-Attempts: 1
//	X-Envelope-Next-Attempt: 2026-11-29T12:05:00Z
//	X-Envelope-Reply: <carol@example.test> 451 4.7.1 Greylisted
//	From: Alice <alice@example.test>
//	To: bob@example.test, carol@example.test
//	Subject: report
//
//	body
//
// Every address is checked with addr.Check (RFC 5321 §4.1.2): a CR, LF, NUL
// or other control character, a missing "@" or an over-long path makes the
// file invalid: such an address could inject SMTP commands. Unknown X-Envelope- names, a repeated single field, a
// missing From or To, and a message that does not start with a header field
// right after the envelope (the trace of a split line) make it invalid too.
// Reply text is stored on one line: control characters become spaces when
// written. In failed/ the To lines may be absent when Failed lines are there.
//
// A file whose first line is not an envelope line is a plain maildir
// message: its envelope is derived as "sendmail -t" does: recipients from
// To, Cc and Bcc (address lists, groups allowed), the sender from
// Return-Path, else Sender, else From. Open leaves the Bcc fields (with their
// continuation lines) out, and Defer and Fail write the message without them
// together with explicit envelope lines.
//
// # Invariants
//
//   - A reader never sees half a file: every file in new/, cur/, failed/ and
//     bad/ got there by rename(2) from tmp/ (or, for bad/, from the queue
//     or maildrop/ it was found in), and Pickup never takes a maildrop file
//     under a dot name, which Drop renames away only once it is complete.
//   - Every state change is: write the whole new file in tmp/, fsync it, read
//     its envelope back, rename it over its destination, fsync the
//     destination directory; only then is an old copy in another queue
//     unlinked and that directory fsynced. On failure before the rename
//     (ENOSPC, EACCES, a check failing) the temp file is removed and the old
//     state is untouched.
//   - Nothing is ever deleted for being unreadable or invalid: such files are
//     left in place (unreadable) or moved to bad/ (invalid) and reported.
//     The one exception is a dot file in maildrop/ older than a day: a
//     submission that never completed.
//   - Every spool file is opened with O_NOFOLLOW|O_NONBLOCK, and a message
//     is read only from the file Scan, List or Load read: same device and
//     inode, size and modification time (checked with the fstat(2) of each
//     open). A name swapped after the listing, for a symbolic link to a file
//     the spool's users cannot read, a hard link, or a FIFO that would block
//     open(2), gives ErrChanged: nothing is sent, nothing is copied into a
//     state change, and the next Scan moves what is there to bad/.
//   - Nothing written by another user enters new/ unchecked: Pickup opens a
//     maildrop file with O_NOFOLLOW|O_NONBLOCK, takes only a regular file
//     with one link, keeps only its sender and recipients, and checks them
//     as Enqueue does.
//   - Scan keeps at most 8 files open and reads only envelopes; the reader
//     from Open holds exactly one descriptor until Close.
//   - Lock is flock(2): it vanishes with the process, so no stale pid is
//     trusted.
//
// # Crash windows
//
//   - Crash while writing in tmp/: the partial file stays in tmp/, which Scan
//     never reads; Scan removes tmp/ files older than 36 hours.
//   - Crash of a submitter in Drop: its dot file stays in maildrop/; Pickup
//     removes it after a day. Crash of Pickup after a message reached new/
//     but before its maildrop file was removed: the next Pickup takes it
//     again (a duplicate, never a loss).
//   - Crash after a rename into cur/ or failed/ but before the unlink of
//     the old copy: the name is in two queues, with the same UID (every
//     state change keeps it, and writes down a plain file's fingerprint).
//     Scan keeps the later state (failed/ over cur/ over new/) and removes
//     the older copy. Two files of one name with different UIDs are two
//     messages (a producer reused the name): the earlier one is renamed and
//     sent. For a later copy without X-Envelope-Id (written before UIDs),
//     see sameMessage.
//   - Crash before a directory fsync: after reboot the rename may be undone,
//     so the older state comes back and some recipients may get a second
//     copy. Mail is duplicated rather than lost.
//   - Crash in the middle of a run: a message's file changes only after all
//     its domain batches, so the recipients already delivered are in the
//     journal (written as each reply arrives, keyed by file name and UID);
//     ReplayJournal takes them off their messages before the next run
//     sends anything, and applies no line to a file that now holds another
//     message. See Journal for what a power loss can still duplicate, and
//     for journals written before UIDs.
package spool
