package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Stream names, as in Toxiproxy: upstream carries client→server bytes, downstream server→client.
const (
	Upstream   = "upstream"
	Downstream = "downstream"
)

// Toxic is a fault applied to one direction of every connection through a proxy. Its JSON form is
// Toxiproxy's: {"name", "type", "stream", "toxicity", "attributes"}; decode it with DecodeToxic,
// which knows the attribute type from "type".
type Toxic struct {
	// Name identifies the toxic within its proxy; it defaults to "<type>_<stream>".
	Name string `json:"name"`
	// Type is one of latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, noop.
	Type string `json:"type"`
	// Stream is Upstream or Downstream (the default).
	Stream string `json:"stream"`
	// Toxicity is the probability, drawn once per connection, that the toxic applies to that
	// connection; 0..1, default 1.
	Toxicity float32 `json:"toxicity"`
	// Attributes holds the type's parameters: one of the *...Attributes types of this package.
	Attributes Attributes `json:"attributes"`
}

// Attributes are a toxic type's parameters. The implementations are the *...Attributes types of
// this package; their zero values are Toxiproxy's defaults.
type Attributes interface {
	// validate reports the first attribute outside its range, naming it and what was expected.
	validate() error
}

// LatencyAttributes delay every chunk of data by Latency ± Jitter milliseconds (uniform).
type LatencyAttributes struct {
	Latency int64 `json:"latency"`
	Jitter  int64 `json:"jitter"`
}

// BandwidthAttributes limit throughput to Rate KB/s (1 KB = 1000 bytes); 0 means unlimited.
type BandwidthAttributes struct {
	Rate int64 `json:"rate"`
}

// SlowCloseAttributes delay the close of the connection by Delay milliseconds once the source
// side has closed.
type SlowCloseAttributes struct {
	Delay int64 `json:"delay"`
}

// TimeoutAttributes stop all data and close the connection after Timeout milliseconds; with 0 the
// connection stalls until the toxic is removed, and then closes.
type TimeoutAttributes struct {
	Timeout int64 `json:"timeout"`
}

// ResetPeerAttributes reset the connection (TCP RST) Timeout milliseconds after the first data.
type ResetPeerAttributes struct {
	Timeout int64 `json:"timeout"`
}

// SlicerAttributes split data into pieces of AverageSize ± SizeVariation bytes, waiting Delay
// microseconds between pieces.
type SlicerAttributes struct {
	AverageSize   int `json:"average_size"`
	SizeVariation int `json:"size_variation"`
	Delay         int `json:"delay"`
}

// LimitDataAttributes close the connection once Bytes bytes have passed in the toxic's stream.
type LimitDataAttributes struct {
	Bytes int64 `json:"bytes"`
}

// NoopAttributes belong to the noop toxic, which passes data through unchanged.
type NoopAttributes struct{}

func nonNegative(name string, v int64) error {
	if v < 0 {
		return fmt.Errorf("attributes.%s: want >= 0, got %d", name, v)
	}
	return nil
}

func (a *LatencyAttributes) validate() error {
	if err := nonNegative("latency", a.Latency); err != nil {
		return err
	}
	return nonNegative("jitter", a.Jitter)
}
func (a *BandwidthAttributes) validate() error { return nonNegative("rate", a.Rate) }
func (a *SlowCloseAttributes) validate() error { return nonNegative("delay", a.Delay) }
func (a *TimeoutAttributes) validate() error   { return nonNegative("timeout", a.Timeout) }
func (a *ResetPeerAttributes) validate() error { return nonNegative("timeout", a.Timeout) }
func (a *LimitDataAttributes) validate() error { return nonNegative("bytes", a.Bytes) }
func (a *NoopAttributes) validate() error      { return nil }
func (a *SlicerAttributes) validate() error {
	if a.AverageSize <= 0 {
		return fmt.Errorf("attributes.average_size: want > 0, got %d", a.AverageSize)
	}
	if err := nonNegative("size_variation", int64(a.SizeVariation)); err != nil {
		return err
	}
	return nonNegative("delay", int64(a.Delay))
}

// ToxicTypes lists the toxic types this package implements, in Toxiproxy's names.
var ToxicTypes = []string{"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "noop"}

// newAttributes returns the zero attributes of a toxic type, or nil for an unknown type.
func newAttributes(typ string) Attributes {
	switch typ {
	case "latency":
		return &LatencyAttributes{}
	case "bandwidth":
		return &BandwidthAttributes{}
	case "slow_close":
		return &SlowCloseAttributes{}
	case "timeout":
		return &TimeoutAttributes{}
	case "reset_peer":
		return &ResetPeerAttributes{}
	case "slicer":
		return &SlicerAttributes{}
	case "limit_data":
		return &LimitDataAttributes{}
	case "noop":
		return &NoopAttributes{}
	}
	return nil
}

// cloneAttributes returns a copy of a, so that an update never changes attributes a running
// connection has already read.
func cloneAttributes(a Attributes) Attributes {
	switch v := a.(type) {
	case *LatencyAttributes:
		c := *v
		return &c
	case *BandwidthAttributes:
		c := *v
		return &c
	case *SlowCloseAttributes:
		c := *v
		return &c
	case *TimeoutAttributes:
		c := *v
		return &c
	case *ResetPeerAttributes:
		c := *v
		return &c
	case *SlicerAttributes:
		c := *v
		return &c
	case *LimitDataAttributes:
		c := *v
		return &c
	case *NoopAttributes:
		return &NoopAttributes{}
	}
	return nil
}

func parseStream(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "", Downstream:
		return Downstream, true
	case Upstream:
		return Upstream, true
	}
	return "", false
}

func validToxicity(t float32) error {
	if !(t >= 0 && t <= 1) { // also rejects NaN
		return fmt.Errorf("toxicity: want a number in [0, 1], got %v", t)
	}
	return nil
}

// normalize fills in Toxiproxy's defaults and validates t, with the checks in Toxiproxy's order
// (stream, type, attributes). Existence checks are the caller's.
func (t *Toxic) normalize() *APIError {
	stream, ok := parseStream(t.Stream)
	if !ok {
		return errInvalidStream()
	}
	t.Stream = stream
	if t.Name == "" {
		t.Name = t.Type + "_" + t.Stream
	}
	zero := newAttributes(t.Type)
	if zero == nil {
		return errInvalidToxicType()
	}
	if t.Attributes == nil {
		t.Attributes = zero
	}
	if fmt.Sprintf("%T", t.Attributes) != fmt.Sprintf("%T", zero) {
		return badRequest(fmt.Errorf("attributes: want %T for type %q, got %T", zero, t.Type, t.Attributes))
	}
	if err := validToxicity(t.Toxicity); err != nil {
		return badRequest(err)
	}
	if err := t.Attributes.validate(); err != nil {
		return badRequest(err)
	}
	return nil
}

// DecodeToxic decodes a toxic as Toxiproxy's POST /proxies/{proxy}/toxics body, applying its
// defaults (stream downstream, toxicity 1, name "<type>_<stream>") and validating every field.
// Errors are *APIError with status 400.
func DecodeToxic(data []byte) (Toxic, error) {
	var in struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Stream     string          `json:"stream"`
		Toxicity   *float32        `json:"toxicity"`
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := decodeJSON(data, &in); err != nil {
		return Toxic{}, badRequest(err)
	}
	t := Toxic{Name: in.Name, Type: in.Type, Stream: in.Stream, Toxicity: 1}
	if in.Toxicity != nil {
		t.Toxicity = *in.Toxicity
	}
	// Type and stream are checked before attributes, as Toxiproxy does.
	if _, ok := parseStream(t.Stream); !ok {
		return Toxic{}, errInvalidStream()
	}
	attrs := newAttributes(t.Type)
	if attrs == nil {
		return Toxic{}, errInvalidToxicType()
	}
	if err := decodeAttributes(in.Attributes, attrs); err != nil {
		return Toxic{}, badRequest(err)
	}
	t.Attributes = attrs
	if err := t.normalize(); err != nil {
		return Toxic{}, err
	}
	return t, nil
}

// decodeToxicUpdate applies a PATCH body ({"attributes": {...}, "toxicity": x}) to a copy of old:
// fields absent from the body keep their values, as in Toxiproxy.
func decodeToxicUpdate(old Toxic, data []byte) (Toxic, error) {
	var in struct {
		Toxicity   *float32        `json:"toxicity"`
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := decodeJSON(data, &in); err != nil {
		return Toxic{}, badRequest(err)
	}
	t := old
	t.Attributes = cloneAttributes(old.Attributes)
	if in.Toxicity != nil {
		t.Toxicity = *in.Toxicity
	}
	if err := decodeAttributes(in.Attributes, t.Attributes); err != nil {
		return Toxic{}, badRequest(err)
	}
	if err := t.normalize(); err != nil {
		return Toxic{}, err
	}
	return t, nil
}

func decodeAttributes(raw json.RawMessage, into Attributes) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value; trailing data is an error.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
