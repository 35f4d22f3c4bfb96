package report

import (
	"github.com/mxflush/mxflush/mta"

	"encoding/json"
	"fmt"
	"time"

	"github.com/mxflush/mxflush/batch"
)

// LogRecord is one recipient outcome as flush --log-format json writes it:
// one JSON object a line on stderr. The field names are stable; every field
// is always present ("" when it has no value) so that a consumer can rely on
// the shape. The fields match LogLine's:
//
//	time          RFC 3339 UTC with nanoseconds, when the outcome was known
//	id            queue ID (spool file name)
//	to            the recipient as spooled, without angle brackets
//	domain        the batch's recipient domain
//	relay         "host[ip]:port", or "none" when no session was made
//	tls           "TLSv1.3:verified", "TLSv1.2:unverified", "TLSv1.3:dane",
//	              "none"; "" when no session was made
//	delay_seconds seconds since the message's arrival (float)
//	dsn           enhanced status code (RFC 3463), "2.0.0", "4.4.1", "5.1.10"
//	status        "sent", "deferred" or "bounced"
//	reply         the server's reply or the local reason, on one line; when
//	              TLS was tried and given up, "; " and the reason follow
type LogRecord struct {
	Time         string  `json:"time"`
	ID           string  `json:"id"`
	To           string  `json:"to"`
	Domain       string  `json:"domain"`
	Relay        string  `json:"relay"`
	TLS          string  `json:"tls"`
	DelaySeconds float64 `json:"delay_seconds"`
	DSN          string  `json:"dsn"`
	Status       string  `json:"status"`
	Reply        string  `json:"reply"`
}

// NewLogRecord turns one outcome, known at t, into its LogRecord. The delay
// is rounded to milliseconds.
func NewLogRecord(t time.Time, e batch.Event) LogRecord {
	reply := e.Reply
	if e.TLSNote != "" {
		reply += "; " + e.TLSNote
	}
	return LogRecord{
		Time:         t.UTC().Format(time.RFC3339Nano),
		ID:           e.ID,
		To:           e.Rcpt,
		Domain:       e.Domain,
		Relay:        e.Relay,
		TLS:          e.TLS,
		DelaySeconds: float64(e.Delay.Milliseconds()) / 1000,
		DSN:          e.DSN,
		Status:       string(e.Status),
		Reply:        mta.OneLine(reply),
	}
}

// JSONLogLine is one outcome as a JSON object, without the newline.
// Strings are escaped by encoding/json, so a reply holding quotes or control
// characters cannot break the line.
func JSONLogLine(t time.Time, e batch.Event) ([]byte, error) {
	b, err := json.Marshal(NewLogRecord(t, e))
	if err != nil {
		return nil, fmt.Errorf("log record of %s <%s>: %w", e.ID, e.Rcpt, err)
	}
	return b, nil
}
