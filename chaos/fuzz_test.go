package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeToxic: the toxic decoder never panics; it either returns a valid toxic that encodes
// to JSON and decodes to itself, or a 400 *APIError.
func FuzzDecodeToxic(f *testing.F) {
	for _, seed := range []string{
		`{"type":"latency","attributes":{"latency":100,"jitter":10}}`,
		`{"name":"x","type":"bandwidth","stream":"upstream","toxicity":0.5,"attributes":{"rate":100}}`,
		`{"type":"slicer","attributes":{"average_size":10,"size_variation":5,"delay":100}}`,
		`{"type":"timeout","attributes":{"timeout":0}}`,
		`{"type":"reset_peer"}`, `{"type":"slow_close","attributes":{"delay":-1}}`,
		`{"type":"limit_data","attributes":{"bytes":"x"}}`, `{"type":"noop","toxicity":2}`,
		`{"type":"nope"}`, `{"stream":"sideways"}`, `[]`, `null`, `{`, ``, `{"type":"noop"} trailing`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeToxic(data)
		if err != nil {
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Message == "" {
				t.Fatalf("error %v is not a 400 *APIError", err)
			}
			return
		}
		if tx.Name == "" || (tx.Stream != Upstream && tx.Stream != Downstream) || tx.Toxicity < 0 || tx.Toxicity > 1 {
			t.Fatalf("invalid toxic accepted: %+v", tx)
		}
		out, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeToxic(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if b, _ := json.Marshal(again); string(b) != string(out) {
			t.Fatalf("round trip: %s != %s", b, out)
		}
	})
}

// FuzzToxicAPI sends arbitrary bodies to the toxic endpoints of one proxy: every answer is a
// success or Toxiproxy's error shape with a 4xx status that matches the body's "status".
// (Proxy endpoints are left out on purpose: a fuzzed listen address would open real listeners.)
func FuzzToxicAPI(f *testing.F) {
	for _, seed := range []string{
		`{"type":"latency","attributes":{"latency":100}}`, `{"name":"t","type":"noop"}`,
		`{"attributes":{"latency":-1}}`, `{"toxicity":7}`, `{"type":"slicer","attributes":{"average_size":1}}`,
		`{`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(seed))
	}
	s := newTestServer(f, Config{})
	echo := startEcho(f)
	p, err := s.CreateProxy(ProxyConfig{Name: "p", Upstream: echo.addr()})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := p.AddToxic(Toxic{Name: "t", Type: "latency", Toxicity: 1}); err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, req := range []struct{ method, path string }{
			{"POST", "/proxies/p/toxics"},
			{"PATCH", "/proxies/p/toxics/t"},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, bytes.NewReader(body)))
			if rec.Code == http.StatusOK {
				continue
			}
			var e APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != rec.Code || e.Message == "" ||
				(rec.Code != 400 && rec.Code != 409) {
				t.Fatalf("%s %s %q: %d %s", req.method, req.path, body, rec.Code, rec.Body)
			}
		}
		// Keep the proxy's toxic list small and the "t" toxic in place for the next input.
		for _, tx := range p.Toxics() {
			if tx.Name != "t" {
				_ = p.RemoveToxic(tx.Name)
			}
		}
	})
}
