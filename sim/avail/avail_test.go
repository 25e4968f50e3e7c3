package avail

import (
	"math"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Hand-computed cases from the calculus of service availability.
func TestFormulas(t *testing.T) {
	if got := Series(0.99, 0.99); !near(got, 0.9801) {
		t.Errorf("Series = %v", got)
	}
	if got := Parallel(0.99, 0.99); !near(got, 0.9999) {
		t.Errorf("Parallel = %v", got)
	}
	// 3 replicas of 99% in one zone of 99.95%: (1 − 0.01³)·0.9995 = 0.999999·0.9995.
	if got := ComponentAvailability(0.99, 3, 1, 0.9995); !near(got, 0.999999*0.9995) {
		t.Errorf("3 replicas, 1 zone = %v", got)
	}
	// The same over 3 zones: (1 − 0.01³)·(1 − 0.0005³).
	if got := ComponentAvailability(0.99, 3, 3, 0.9995); !near(got, 0.999999*(1-1.25e-10)) {
		t.Errorf("3 replicas, 3 zones = %v", got)
	}
	// More zones than replicas: only as many zones as replicas count.
	if ComponentAvailability(0.99, 2, 3, 0.9995) != ComponentAvailability(0.99, 2, 2, 0.9995) {
		t.Error("zones beyond replicas counted")
	}
	if got := Nines(0.999); !near(got, 3) {
		t.Errorf("Nines(0.999) = %v", got)
	}
	if got := ExtraNine(0.999); !near(got, 0.9999) {
		t.Errorf("ExtraNine(0.999) = %v", got)
	}
}

func TestEntrypoint(t *testing.T) {
	sys, err := model.Load("m.yaml", []byte(`apiVersion: faultline/v1
kind: System
metadata: {name: t}
slo: {availability: 0.999}
services:
  - {name: gw, replicas: 2, availability: 0.99}
  - {name: api, replicas: 1, availability: 0.99}
  - {name: recs, replicas: 1, availability: 0.9}
  - {name: mail, replicas: 1, availability: 0.5}
datastores:
  - {name: db, replicas: 1, availability: 0.999}
brokers:
  - {name: q, replicas: 1}
edges:
  - {from: gw, to: api}
  - {from: gw, to: recs, policy: {fallback: cached}}
  - {from: api, to: db}
  - {from: api, to: q}
  - {from: q, to: mail}
entrypoints:
  - {name: buy, service: gw}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults{Service: 0.995, Datastore: 0.999, Broker: 0.999, External: 0.999, Zone: 1}
	rs := Entrypoints(sys, d)
	if len(rs) != 1 {
		t.Fatalf("results %v", rs)
	}
	r := rs[0]
	// Needed: gw (2 × 0.99 → 0.9999), api (0.99), db (0.999). recs has a fallback; q and mail are async.
	want := 0.9999 * 0.99 * 0.999
	if !near(r.Availability, want) {
		t.Errorf("availability %v, want %v", r.Availability, want)
	}
	if r.Meets || r.Target != 0.999 || len(r.Components) != 3 || r.Components[0].Name != "api" {
		t.Errorf("result %+v", r)
	}
	if !r.Components[0].BelowExtraNine || r.Components[2].BelowExtraNine {
		t.Errorf("extra nine: %+v", r.Components)
	}
	sum := 0.0
	for _, c := range r.Components {
		sum += c.Share
	}
	if !near(sum, 1) {
		t.Errorf("shares sum to %v", sum)
	}
}
