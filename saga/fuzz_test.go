package saga

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
)

// compactJSON renders raw JSON without insignificant whitespace, for comparing values that went
// through an encoder (which compacts json.RawMessage).
func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("accepted value holds invalid JSON %q: %v", raw, err)
	}
	return b.String()
}

// FuzzDecodeRequest: DecodeRequest never panics, and what it accepts is valid and survives an
// encode/decode round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"sagaId":"s1","saga":"order","step":"reserve","op":"action","attempt":1}`,
		`{"sagaId":"s1","saga":"order","step":"reserve","op":"compensate","attempt":12,"input":{"sku":"A-1","qty":2},"results":{"charge":{"id":"c-9"},"notify":null}}`,
		`{"sagaId":"ß/ü","step":"a b","op":"action","attempt":2147483647,"input":"text"}`,
		`{"sagaId":"s1","step":"reserve","op":"action","attempt":1,"input":  [1, 2 ,3] }`,
		`{"SAGAID":"s1","Step":"reserve","OP":"action","attempt":1}`,
		`{"sagaId":"s1","step":"reserve","op":"action","attempt":1,"sagaId":"s2"}`,
		`{"sagaId":"s1","step":"reserve","op":"undo","attempt":1}`,
		`{"sagaId":"","step":"reserve","op":"action","attempt":1}`,
		`{"sagaId":"s1","step":"reserve","op":"action","attempt":0}`,
		`{"sagaId":"s1","step":"reserve","op":"action","attempt":1.5}`,
		`{"sagaId":5}`,
		`{"sagaId":"s1","results":[]}`,
		`{"sagaId":"s1"`,
		`null`,
		`[]`,
		``,
		"{\"sagaId\":\"\xff\xfe\",\"step\":\"x\",\"op\":\"action\",\"attempt\":1}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			if r != nil {
				t.Fatalf("DecodeRequest returned %+v with error %v", r, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted request does not validate: %v", err)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted request %+v does not encode: %v", r, err)
		}
		r2, err := DecodeRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request %s rejected: %v", enc, err)
		}
		if r.SagaID != r2.SagaID || r.Saga != r2.Saga || r.Step != r2.Step || r.Op != r2.Op || r.Attempt != r2.Attempt {
			t.Fatalf("round trip changed the request: %+v → %+v", r, r2)
		}
		if r.Key() != r2.Key() {
			t.Fatalf("round trip changed the key: %s → %s", r.Key(), r2.Key())
		}
		if compactJSON(t, r.Input) != compactJSON(t, r2.Input) {
			t.Fatalf("round trip changed the input: %s → %s", r.Input, r2.Input)
		}
		if !maps.EqualFunc(r.Results, r2.Results, func(a, b json.RawMessage) bool { return compactJSON(t, a) == compactJSON(t, b) }) {
			t.Fatalf("round trip changed the results: %v → %v", r.Results, r2.Results)
		}
		enc2, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %s → %s (%v)", enc, enc2, err)
		}
	})
}

// FuzzDecodeReply: DecodeReply never panics, and what it accepts is valid and survives an
// encode/decode round trip unchanged.
func FuzzDecodeReply(f *testing.F) {
	for _, seed := range []string{
		`{"sagaId":"s1","step":"reserve","op":"action","attempt":1,"status":"succeeded","output":{"reservation":"r-1"}}`,
		`{"sagaId":"s1","step":"charge","op":"action","attempt":3,"status":"failed","error":"card declined"}`,
		`{"sagaId":"s1","step":"charge","op":"compensate","attempt":1,"status":"succeeded","output":null}`,
		`{"sagaId":"s1","step":"charge","op":"compensate","attempt":1,"status":"succeeded","output":  "x" }`,
		`{"sagaId":"s1","step":"charge","op":"action","attempt":1,"status":"maybe"}`,
		`{"sagaId":"s1","step":"charge","op":"action","attempt":-1,"status":"failed"}`,
		`{"sagaId":"s1","step":"","op":"action","attempt":1,"status":"failed"}`,
		`{"status":"succeeded"}`,
		`{"sagaId":"s1","step":"x","op":"action","attempt":1,"status":"succeeded","output":}`,
		`"succeeded"`,
		`{}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeReply(data)
		if err != nil {
			if r != nil {
				t.Fatalf("DecodeReply returned %+v with error %v", r, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted reply does not validate: %v", err)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted reply %+v does not encode: %v", r, err)
		}
		r2, err := DecodeReply(enc)
		if err != nil {
			t.Fatalf("re-encoded reply %s rejected: %v", enc, err)
		}
		if r.SagaID != r2.SagaID || r.Step != r2.Step || r.Op != r2.Op || r.Attempt != r2.Attempt || r.Status != r2.Status || r.Error != r2.Error {
			t.Fatalf("round trip changed the reply: %+v → %+v", r, r2)
		}
		if compactJSON(t, r.Output) != compactJSON(t, r2.Output) {
			t.Fatalf("round trip changed the output: %s → %s", r.Output, r2.Output)
		}
		enc2, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %s → %s (%v)", enc, enc2, err)
		}
	})
}
