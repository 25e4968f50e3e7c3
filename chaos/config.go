package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// StartupProxy is one proxy of a startup config file, with the toxics to install on it before
// any traffic.
type StartupProxy struct {
	ProxyConfig
	Toxics []Toxic
}

// LoadConfig reads a startup config file (the -config flag): Toxiproxy's format, a JSON array of
// proxies {name, listen, upstream, enabled}, where each proxy may also list "toxics" in the shape
// of the toxics API ({name, type, stream, toxicity, attributes}). Errors name the file, and the
// line and column for malformed JSON or the proxy and toxic for a bad value.
func LoadConfig(path string) ([]StartupProxy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chaos config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses a startup config file's contents; name is used in errors.
func ParseConfig(name string, data []byte) ([]StartupProxy, error) {
	var raw []struct {
		Name     string            `json:"name"`
		Listen   string            `json:"listen"`
		Upstream string            `json:"upstream"`
		Enabled  *bool             `json:"enabled"`
		Toxics   []json.RawMessage `json:"toxics"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w", where(name, data, err), describeJSONError(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the JSON array of proxies", name)
	}
	out := make([]StartupProxy, len(raw))
	seen := map[string]int{}
	for i, r := range raw {
		at := fmt.Sprintf("%s: proxy %d", name, i+1)
		if r.Name != "" {
			at += fmt.Sprintf(" (%q)", r.Name)
		}
		switch {
		case r.Name == "":
			return nil, fmt.Errorf("%s: field name is missing", at)
		case r.Upstream == "":
			return nil, fmt.Errorf("%s: field upstream is missing (the address connections are forwarded to)", at)
		}
		if j, dup := seen[r.Name]; dup {
			return nil, fmt.Errorf("%s: the name is used by proxy %d too", at, j)
		}
		seen[r.Name] = i + 1
		sp := StartupProxy{ProxyConfig: ProxyConfig{Name: r.Name, Listen: r.Listen, Upstream: r.Upstream, Enabled: r.Enabled}}
		names := map[string]bool{}
		for k, rt := range r.Toxics {
			t, err := DecodeToxic(rt)
			if err != nil {
				return nil, fmt.Errorf("%s: toxic %d: %s", at, k+1, errorText(err))
			}
			if names[t.Name] {
				return nil, fmt.Errorf("%s: toxic %d: the name %q is used twice", at, k+1, t.Name)
			}
			names[t.Name] = true
			sp.Toxics = append(sp.Toxics, t)
		}
		out[i] = sp
	}
	return out, nil
}

// ApplyConfig creates the proxies of a startup config (as POST /populate does) and installs
// their toxics, before any traffic reaches them.
func (s *Server) ApplyConfig(ps []StartupProxy) error {
	cfgs := make([]ProxyConfig, len(ps))
	for i, p := range ps {
		cfgs[i] = p.ProxyConfig
	}
	proxies, err := s.Populate(cfgs)
	if err != nil {
		return fmt.Errorf("chaos config: %s", errorText(err))
	}
	for i, p := range proxies {
		for _, t := range ps[i].Toxics {
			if _, err := p.AddToxic(t); err != nil {
				return fmt.Errorf("chaos config: proxy %q: toxic %q: %s", p.Name(), t.Name, errorText(err))
			}
		}
	}
	return nil
}

// errorText is an error's message, without the API error's status.
func errorText(err error) string {
	var api *APIError
	if errors.As(err, &api) {
		return api.Message
	}
	return err.Error()
}

// where locates a JSON decoding error in the file: "name:line:col" when the error has an
// offset, else the name.
func where(name string, data []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 1 || off > int64(len(data)) {
		return name
	}
	// Offset counts the bytes read when the error was found: the culprit is the last of them.
	line, col := 1, 1
	for _, b := range data[:off-1] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%s:%d:%d", name, line, col)
}

// describeJSONError rewords encoding/json's errors for a person editing the file.
func describeJSONError(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			return fmt.Errorf("expected a JSON array of proxies, got a JSON %s", typ.Value)
		}
		return fmt.Errorf("field %s: expected %s, got a JSON %s", field, typ.Type, typ.Value)
	}
	return err
}
