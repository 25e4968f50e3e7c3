package chaos

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIBadInput checks that bad requests get Toxiproxy's error body and status.
func TestAPIBadInput(t *testing.T) {
	s := newTestServer(t, Config{})
	echo := startEcho(t)
	h := s.Handler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("POST", "/proxies", `{"name":"p","upstream":"`+echo.addr()+`"}`); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", "/proxies/p/toxics", `{"type":"latency","attributes":{"latency":1}}`); rec.Code != 200 {
		t.Fatalf("add toxic: %d %s", rec.Code, rec.Body)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		msg                      string // prefix of the error message
	}{
		{"malformed proxy JSON", "POST", "/proxies", `{"name":`, 400, "bad request body"},
		{"proxy without name", "POST", "/proxies", `{"upstream":"127.0.0.1:1"}`, 400, "missing required field: name"},
		{"proxy without upstream", "POST", "/proxies", `{"name":"q"}`, 400, "missing required field: upstream"},
		{"proxy field of the wrong type", "POST", "/proxies", `{"name":"q","upstream":"x:1","enabled":"yes"}`, 400, "bad request body"},
		{"duplicate proxy", "POST", "/proxies", `{"name":"p","upstream":"127.0.0.1:1"}`, 409, "proxy already exists"},
		{"unknown proxy", "GET", "/proxies/nope", ``, 404, "proxy not found"},
		{"update unknown proxy", "PATCH", "/proxies/nope", `{}`, 404, "proxy not found"},
		{"delete unknown proxy", "DELETE", "/proxies/nope", ``, 404, "proxy not found"},
		{"malformed proxy update", "PATCH", "/proxies/p", `[`, 400, "bad request body"},
		{"toxics of unknown proxy", "GET", "/proxies/nope/toxics", ``, 404, "proxy not found"},
		{"toxic on unknown proxy", "POST", "/proxies/nope/toxics", `{"type":"noop"}`, 404, "proxy not found"},
		{"unknown toxic type", "POST", "/proxies/p/toxics", `{"type":"explode"}`, 400, "invalid toxic type"},
		{"missing toxic type", "POST", "/proxies/p/toxics", `{}`, 400, "invalid toxic type"},
		{"invalid stream", "POST", "/proxies/p/toxics", `{"type":"noop","stream":"sideways"}`, 400, "stream was invalid"},
		{"malformed toxic JSON", "POST", "/proxies/p/toxics", `{"type":"latency",`, 400, "bad request body"},
		{"attribute of the wrong type", "POST", "/proxies/p/toxics", `{"type":"latency","name":"l2","attributes":{"latency":"slow"}}`, 400, "bad request body"},
		{"negative latency", "POST", "/proxies/p/toxics", `{"type":"latency","name":"l2","attributes":{"latency":-1}}`, 400, "bad request body: attributes.latency"},
		{"negative rate", "POST", "/proxies/p/toxics", `{"type":"bandwidth","attributes":{"rate":-5}}`, 400, "bad request body: attributes.rate"},
		{"slicer without size", "POST", "/proxies/p/toxics", `{"type":"slicer"}`, 400, "bad request body: attributes.average_size"},
		{"toxicity above 1", "POST", "/proxies/p/toxics", `{"type":"noop","toxicity":1.5}`, 400, "bad request body: toxicity"},
		{"negative toxicity", "POST", "/proxies/p/toxics", `{"type":"noop","toxicity":-0.1}`, 400, "bad request body: toxicity"},
		{"duplicate toxic", "POST", "/proxies/p/toxics", `{"type":"latency"}`, 409, "toxic already exists"},
		{"unknown toxic", "GET", "/proxies/p/toxics/nope", ``, 404, "toxic not found"},
		{"update unknown toxic", "PATCH", "/proxies/p/toxics/nope", `{}`, 404, "toxic not found"},
		{"delete unknown toxic", "DELETE", "/proxies/p/toxics/nope", ``, 404, "toxic not found"},
		{"negative value in update", "PATCH", "/proxies/p/toxics/latency_downstream", `{"attributes":{"jitter":-3}}`, 400, "bad request body: attributes.jitter"},
		{"toxicity out of range in update", "POST", "/proxies/p/toxics/latency_downstream", `{"toxicity":2}`, 400, "bad request body: toxicity"},
		{"malformed update", "PATCH", "/proxies/p/toxics/latency_downstream", `nope`, 400, "bad request body"},
		{"malformed populate", "POST", "/populate", `{"name":"p"}`, 400, "bad request body"},
		{"populate without name", "POST", "/populate", `[{"upstream":"x:1"}]`, 400, "missing required field: name at proxy 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(c.method, c.path, c.body)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, c.status, rec.Body)
			}
			var body struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q is not Toxiproxy's error shape: %v", rec.Body, err)
			}
			if body.Status != c.status || !strings.HasPrefix(body.Error, c.msg) {
				t.Fatalf("body %+v, want status %d and an error starting %q", body, c.status, c.msg)
			}
		})
	}
	// A failed update leaves the toxic unchanged.
	rec := do("GET", "/proxies/p/toxics/latency_downstream", "")
	if !strings.Contains(rec.Body.String(), `"jitter":0`) || !strings.Contains(rec.Body.String(), `"toxicity":1`) {
		t.Fatalf("toxic changed by a rejected update: %s", rec.Body)
	}
}

func TestAPIRejectsBrowsers(t *testing.T) {
	s := newTestServer(t, Config{})
	req := httptest.NewRequest("GET", "/proxies", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
}

func TestAPIShapes(t *testing.T) {
	s := newTestServer(t, Config{})
	echo := startEcho(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/populate", `[{"name":"a","upstream":"`+echo.addr()+`"}]`)
	if code != 201 || !strings.HasPrefix(body, `{"proxies":[{"name":"a","listen":"127.0.0.1:`) || !strings.Contains(body, `"enabled":true,"toxics":[]`) {
		t.Fatalf("populate: %d %s", code, body)
	}
	code, body = post("/proxies/a/toxics", `{"type":"noop"}`)
	want := `{"name":"noop_downstream","type":"noop","stream":"downstream","toxicity":1,"attributes":{}}`
	if code != 200 || body != want {
		t.Fatalf("toxic: %d %s, want %s", code, body, want)
	}
	resp, err := http.Get(ts.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []Event
	if err := json.NewDecoder(resp.Body).Decode(&events); err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %d %v", resp.StatusCode, err)
	}
	code, _ = post("/reset", "")
	if code != 204 {
		t.Fatalf("reset: %d", code)
	}
}

// TestPopulateReplacesChangedProxy: populate keeps an unchanged proxy but replaces one whose
// upstream changed (dropping its toxics), as Toxiproxy does.
func TestPopulateReplacesChangedProxy(t *testing.T) {
	s := newTestServer(t, Config{})
	a, b := startEcho(t), startEcho(t)
	ps, err := s.Populate([]ProxyConfig{{Name: "p", Upstream: a.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps[0].AddToxic(Toxic{Type: "noop", Toxicity: 1}); err != nil {
		t.Fatal(err)
	}
	same, err := s.Populate([]ProxyConfig{{Name: "p", Listen: ps[0].Listen(), Upstream: a.addr()}})
	if err != nil || same[0] != ps[0] || len(same[0].Toxics()) != 1 {
		t.Fatalf("unchanged proxy not kept: %v", err)
	}
	changed, err := s.Populate([]ProxyConfig{{Name: "p", Listen: ps[0].Listen(), Upstream: b.addr()}})
	if err != nil || changed[0] == ps[0] || changed[0].Upstream() != b.addr() || len(changed[0].Toxics()) != 0 {
		t.Fatalf("changed proxy not replaced: %v", err)
	}
	if ps[0].Enabled() {
		t.Fatal("replaced proxy still listening")
	}
}
