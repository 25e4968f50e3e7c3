package grpcx

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
)

// FuzzParsePushback feeds arbitrary grpc-retry-pushback-ms trailer values (from any server) to the
// parser: it must never panic, must read well-formed values exactly, must refuse (d < 0) anything
// negative or malformed, and must read back what formatPushback writes.
func FuzzParsePushback(f *testing.F) {
	for _, seed := range []string{"0", "250", "-1", "abc", "", " 5", "1e3", "9223372036854775807", "99999999999999999999", "+7"} {
		f.Add(seed, false)
	}
	f.Add("10", true)
	f.Fuzz(func(t *testing.T, v string, repeated bool) {
		md := metadata.MD{PushbackKey: {v}}
		if repeated {
			md[PushbackKey] = append(md[PushbackKey], v)
		}
		d, present := parsePushback(md)
		if !present {
			t.Fatalf("%q: the key was there but not seen", v)
		}
		if repeated {
			if d != -1 {
				t.Fatalf("repeated %q: d = %v, want -1 (do not retry)", v, d)
			}
			return
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err == nil && ms >= 0 && ms < 1<<40:
			if d != time.Duration(ms)*time.Millisecond {
				t.Fatalf("%q: d = %v, want %dms", v, d, ms)
			}
			if back, _ := parsePushback(metadata.MD{PushbackKey: {formatPushback(d)}}); d > 0 && back != d {
				t.Fatalf("%q: formatPushback(%v) reads back as %v", v, d, back)
			}
		case err == nil && ms < 0:
			if d != -1 {
				t.Fatalf("%q: d = %v, want -1 for a negative pushback", v, d)
			}
		}
		if d < -1 {
			t.Fatalf("%q: d = %v", v, d)
		}
	})
}
