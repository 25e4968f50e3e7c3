package chaos

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleConfig = `[
  {"name": "redis", "listen": "127.0.0.1:0", "upstream": "UPSTREAM",
   "toxics": [
     {"type": "latency", "attributes": {"latency": 30, "jitter": 0}},
     {"name": "cut", "type": "limit_data", "stream": "upstream", "toxicity": 1, "attributes": {"bytes": 1}}
   ]},
  {"name": "postgres", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432", "enabled": false}
]`

func TestParseConfig(t *testing.T) {
	ps, err := ParseConfig("chaos.json", []byte(sampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "redis" || len(ps[0].Toxics) != 2 || ps[1].Enabled == nil || *ps[1].Enabled {
		t.Fatalf("parsed %+v", ps)
	}
	if got := ps[0].Toxics[0]; got.Name != "latency_downstream" || got.Stream != Downstream || got.Toxicity != 1 {
		t.Fatalf("defaults not applied: %+v", got)
	}
	if got := ps[0].Toxics[1]; got.Name != "cut" || got.Stream != Upstream {
		t.Fatalf("second toxic %+v", got)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`[{"name": "a", "upstream": "x:1",}]`, "chaos.json:1:34: invalid character '}'"},
		{"[\n  {\"name\": 5}\n]", "chaos.json:2:12: field name: expected string, got a JSON number"},
		{`{"name": "a"}`, "chaos.json:1:1: expected a JSON array of proxies, got a JSON object"},
		{`[{"name": "a", "upstream": "x:1", "bogus": 1}]`, `chaos.json: json: unknown field "bogus"`},
		{`[{"upstream": "x:1"}]`, "chaos.json: proxy 1: field name is missing"},
		{`[{"name": "a"}]`, `chaos.json: proxy 1 ("a"): field upstream is missing`},
		{`[{"name": "a", "upstream": "x:1"}, {"name": "a", "upstream": "y:1"}]`, `chaos.json: proxy 2 ("a"): the name is used by proxy 1 too`},
		{`[{"name": "a", "upstream": "x:1", "toxics": [{"type": "teleport"}]}]`, `chaos.json: proxy 1 ("a"): toxic 1: invalid toxic type`},
		{`[{"name": "a", "upstream": "x:1", "toxics": [{"type": "latency", "attributes": {"latency": -1}}]}]`, `chaos.json: proxy 1 ("a"): toxic 1:`},
		{`[{"name": "a", "upstream": "x:1", "toxics": [{"type": "noop"}, {"type": "noop"}]}]`, `toxic 2: the name "noop_downstream" is used twice`},
		{`[] []`, "chaos.json: unexpected data after the JSON array of proxies"},
		{``, "chaos.json: EOF"},
	}
	for _, c := range cases {
		_, err := ParseConfig("chaos.json", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%q) = %v; want an error containing %q", c.in, err, c.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("LoadConfig of a missing file = %v", err)
	}
}

// A startup config creates its proxies and toxics before any traffic: the first connection
// already meets the limit_data toxic.
func TestApplyConfigBeforeTraffic(t *testing.T) {
	up := startEcho(t).addr()
	path := filepath.Join(t.TempDir(), "chaos.json")
	if err := os.WriteFile(path, []byte(strings.Replace(sampleConfig, "UPSTREAM", up, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{})
	if err := s.ApplyConfig(ps); err != nil {
		t.Fatal(err)
	}
	p, err := s.Proxy("redis")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Toxics()) != 2 {
		t.Fatalf("toxics %+v", p.Toxics())
	}
	if pg, _ := s.Proxy("postgres"); pg == nil || pg.Enabled() {
		t.Fatalf("postgres proxy should exist, disabled")
	}
	conn, err := net.DialTimeout("tcp", p.Listen(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, _ := conn.Read(buf)
	if n > 1 {
		t.Fatalf("read %q back: the 1-byte upstream limit_data toxic was not in place before the first connection", buf[:n])
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(sampleConfig))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"name":"a","upstream":"x:1","toxics":[{"type":"slicer","attributes":{"average_size":0}}]}]`))
	f.Add([]byte(`[{"name":"a","upstream":"x:1","enabled":true,"toxics":[{"type":"bandwidth","toxicity":0.5,"attributes":{"rate":1}}]}]`))
	f.Add([]byte("[\n{\"name\": [1]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseConfig("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.Upstream == "" {
				t.Fatalf("accepted a proxy without name or upstream: %+v", p)
			}
			for _, tx := range p.Toxics {
				if tx.Name == "" || tx.Attributes == nil {
					t.Fatalf("accepted an incomplete toxic: %+v", tx)
				}
			}
		}
	})
}
