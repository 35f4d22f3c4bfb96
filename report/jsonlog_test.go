package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/batch"
)

// The JSON log line has exactly the documented fields, always present, and
// escapes what the reply holds so the record stays on one line.
func TestJSONLogLine(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 500_000_000, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		e    batch.Event
		want map[string]any
	}{
		{"sent over TLS", batch.Event{ID: "1.M1.host", Rcpt: "bob@a.test", Domain: "a.test", Relay: "mx.a.test[127.0.0.2]:2525",
			Delay: 1234 * time.Millisecond, Status: batch.Sent, DSN: "2.0.0", Reply: "250 2.0.0 OK: queued", TLS: "TLSv1.3:verified"},
			map[string]any{"time": "2026-11-29T11:00:00.5Z", "id": "1.M1.host", "to": "bob@a.test", "domain": "a.test",
				"relay": "mx.a.test[127.0.0.2]:2525", "tls": "TLSv1.3:verified", "delay_seconds": 1.234, "dsn": "2.0.0",
				"status": "sent", "reply": "250 2.0.0 OK: queued"}},
		{"no session, reply with quotes and newline, TLS note", batch.Event{ID: "2.M1.host", Rcpt: "x@b.test", Domain: "b.test", Relay: "none",
			Status: batch.Deferred, DSN: "4.4.1", Reply: "connect \"refused\"\nretry", TLSNote: "TLS failed"},
			map[string]any{"time": "2026-11-29T11:00:00.5Z", "id": "2.M1.host", "to": "x@b.test", "domain": "b.test",
				"relay": "none", "tls": "", "delay_seconds": 0.0, "dsn": "4.4.1", "status": "deferred",
				"reply": "connect \"refused\"; retry; TLS failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := JSONLogLine(at, tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "\n") {
				t.Fatalf("record spans lines: %s", b)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("fields %v, want exactly %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v (line %s)", k, got[k], v, b)
				}
			}
		})
	}
}
