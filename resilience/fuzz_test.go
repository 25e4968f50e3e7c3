package resilience

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// FuzzParseRetryAfter feeds arbitrary Retry-After header values (from any server) to the parser:
// it must never panic, never return a negative wait, and agree with the header's two forms.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, seed := range []string{
		"", "0", "120", " 7 ", "-1", "1.5", "99999999999999999999", "9223372036854775807",
		"Wed, 25 Nov 2026 12:00:30 GMT", "Wed, 25 Nov 2026 11:00:00 GMT", "Wednesday, 25-Nov-26 12:01:00 GMT",
		"Wed Nov 25 12:02:00 2026", "soon", "\x00", "12a",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := ParseRetryAfter(h, now)
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v: negative wait", h, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false: a wait without ok", h, d)
		}
		if secs, err := strconv.ParseUint(h, 10, 63); err == nil && secs < 1<<30 {
			if !ok || d != time.Duration(secs)*time.Second {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %ds", h, d, ok, secs)
			}
		}
		if at, err := http.ParseTime(h); err == nil && ok {
			want := max(at.Sub(now), 0)
			if d != want {
				t.Fatalf("ParseRetryAfter(%q) = %v, want %v", h, d, want)
			}
		}
	})
}
