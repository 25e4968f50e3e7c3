// Package avail computes the availability a request can expect from a system's design: each
// component's availability from its replicas and zones, and each entrypoint's from the components
// its synchronous dependency tree needs, against the SLO. The review reports it; the simulator
// starts from the same numbers.
//
// The math is the standard calculus of service availability (Treynor et al., "The Calculus of
// Service Availability", ACM Queue 15(2), 2017): dependencies in series multiply, redundant copies
// in parallel give 1−∏(1−a), and every critical dependency should be one nine better than the
// service that needs it (the rule of the extra nine).
package avail

import (
	"math"
	"sort"

	"github.com/faultline-dev/faultline/model"
)

// Defaults are the availabilities assumed when the model gives none: of one instance of each kind
// of component, and of one availability zone. They are deliberately modest, documented in
// docs/review.md ("Availability"), and overridden by the model's availability fields.
type Defaults struct {
	Service   float64 `json:"service" yaml:"service,omitempty"`
	Datastore float64 `json:"datastore" yaml:"datastore,omitempty"`
	Broker    float64 `json:"broker" yaml:"broker,omitempty"`
	External  float64 `json:"external" yaml:"external,omitempty"`
	Zone      float64 `json:"zone" yaml:"zone,omitempty"`
}

// DefaultAssumptions: one instance of a service (a pod or VM with its node) 99.5%, of a datastore
// or broker node 99.9%, an external API 99.9%, one zone 99.95%.
var DefaultAssumptions = Defaults{Service: 0.995, Datastore: 0.999, Broker: 0.999, External: 0.999, Zone: 0.9995}

// Component is one component's availability and its weight in an entrypoint's result.
type Component struct {
	Name string              `json:"name"`
	Kind model.ComponentKind `json:"kind"`
	// Instance is the availability of one replica; Availability that of the component with all
	// its replicas and zones.
	Instance     float64 `json:"instance"`
	Replicas     int     `json:"replicas"`
	Zones        int     `json:"zones"`
	Availability float64 `json:"availability"`
	// Share is the fraction of the entrypoint's expected downtime this component causes.
	Share float64 `json:"share"`
	// BelowExtraNine is true when the component is not one nine better than the entrypoint's
	// target, as every critical dependency should be.
	BelowExtraNine bool `json:"belowExtraNine"`
}

// Result is an entrypoint's predicted availability.
type Result struct {
	Entrypoint   string  `json:"entrypoint"`
	Service      string  `json:"service"`
	Availability float64 `json:"availability"`
	// Nines is −log10(1 − availability): 3 for 99.9%.
	Nines float64 `json:"nines"`
	// Target is the SLO availability (the entrypoint's, else the system's); 0 when there is none.
	Target float64 `json:"target,omitempty"`
	Meets  bool    `json:"meets"`
	// Components are the critical sync dependencies, the entry service included, costliest first.
	Components []Component `json:"components"`
}

// ComponentAvailability is the availability of a component with n replicas of availability a spread
// over z zones of availability zone: it is up while some replica is up and some zone hosting one is
// up, taking replica and zone failures as independent: (1−(1−a)^n)·(1−(1−zone)^z). A component
// with more zones than replicas uses only as many zones as it has replicas.
func ComponentAvailability(a float64, n, z int, zone float64) float64 {
	if n < 1 {
		n = 1
	}
	if z < 1 {
		z = 1
	}
	z = min(z, n)
	return (1 - math.Pow(1-a, float64(n))) * (1 - math.Pow(1-zone, float64(z)))
}

// Series is the availability of components that are all needed: the product.
func Series(as ...float64) float64 {
	p := 1.0
	for _, a := range as {
		p *= a
	}
	return p
}

// Parallel is the availability of redundant copies of which one suffices: 1−∏(1−a).
func Parallel(as ...float64) float64 {
	q := 1.0
	for _, a := range as {
		q *= 1 - a
	}
	return 1 - q
}

// Nines converts an availability to nines: −log10(1−a), capped at 12.
func Nines(a float64) float64 {
	if a >= 1 {
		return 12
	}
	return math.Min(12, -math.Log10(1-a))
}

// ExtraNine is the availability each critical dependency of a service with the given target needs:
// one nine more (0.999 → 0.9999).
func ExtraNine(target float64) float64 { return 1 - (1-target)/10 }

// Of returns the availability of a component of the system under the given defaults.
func Of(s *model.System, name string, d Defaults) (Component, bool) {
	c, ok := components(s, d)[name]
	return c, ok
}

// components computes every component's availability once.
func components(s *model.System, d Defaults) map[string]Component {
	out := make(map[string]Component, len(s.Services)+len(s.Datastores)+len(s.Brokers)+len(s.Externals))
	for _, x := range s.Services {
		out[x.Name] = of(model.Component{Name: x.Name, Kind: model.KindService, Replicas: x.Replicas, Zones: x.Zones}, pick(x.Availability, d.Service), d)
	}
	for _, x := range s.Datastores {
		out[x.Name] = of(model.Component{Name: x.Name, Kind: model.KindDatastore, Replicas: x.Replicas, Zones: x.Zones}, pick(x.Availability, d.Datastore), d)
	}
	for _, x := range s.Brokers {
		out[x.Name] = of(model.Component{Name: x.Name, Kind: model.KindBroker, Replicas: x.Replicas, Zones: x.Zones}, pick(x.Availability, d.Broker), d)
	}
	for _, x := range s.Externals {
		out[x.Name] = of(model.Component{Name: x.Name, Kind: model.KindExternal, Replicas: 1}, pick(x.Availability, d.External), d)
	}
	return out
}

func of(c model.Component, inst float64, d Defaults) Component {
	name := c.Name
	zones := len(c.Zones)
	out := Component{Name: name, Kind: c.Kind, Instance: inst, Replicas: max(1, c.Replicas), Zones: max(1, zones)}
	if c.Kind == model.KindExternal {
		// An external's figure is what its provider promises for the whole service.
		out.Availability = inst
		out.Replicas, out.Zones = 1, 1
		return out
	}
	if zones == 0 {
		// Zones unknown: count the zone once, as if all replicas shared one.
		zones = 1
	}
	out.Availability = ComponentAvailability(inst, out.Replicas, zones, d.Zone)
	return out
}

func pick(v, def float64) float64 {
	if v > 0 {
		return v
	}
	return def
}

// Critical reports whether a caller needs an edge's target to answer: a sync edge not marked
// critical: false and without a fallback.
func Critical(e model.Edge) bool {
	if !e.IsSync() {
		return false
	}
	if e.Critical != nil && !*e.Critical {
		return false
	}
	return e.Policy == nil || e.Policy.Fallback == ""
}

// Entrypoints computes every entrypoint's availability (the declared ones, or the services nobody
// calls when none are declared).
func Entrypoints(s *model.System, d Defaults) []Result {
	g := model.NewGraph(s)
	comps := components(s, d)
	var out []Result
	for _, ep := range model.EffectiveEntrypoints(s, g) {
		out = append(out, entrypoint(s, g, comps, ep))
	}
	return out
}

// entrypoint multiplies the availabilities of every component a request needs: the entry service
// and everything reachable from it over critical sync edges. Each is counted once, however many
// paths lead to it, and a request is assumed to need all of them (the pessimistic reading of a
// dependency tree, which is what an SLO has to survive).
func entrypoint(s *model.System, g *model.Graph, comps map[string]Component, ep model.Entrypoint) Result {
	r := Result{Entrypoint: ep.Name, Service: ep.Service, Target: target(s, ep)}
	needed := []string{ep.Service}
	seen := map[string]bool{ep.Service: true}
	for i := 0; i < len(needed); i++ {
		for _, e := range g.Callees(needed[i]) {
			if Critical(e) && !seen[e.To] {
				seen[e.To] = true
				needed = append(needed, e.To)
			}
		}
	}
	a := 1.0
	down := 0.0
	for _, name := range needed {
		c, ok := comps[name]
		if !ok {
			continue
		}
		a *= c.Availability
		down += 1 - c.Availability
		r.Components = append(r.Components, c)
	}
	for i := range r.Components {
		c := &r.Components[i]
		if down > 0 {
			c.Share = (1 - c.Availability) / down
		}
		if r.Target > 0 {
			c.BelowExtraNine = c.Availability < ExtraNine(r.Target)
		}
	}
	sort.SliceStable(r.Components, func(i, j int) bool { return r.Components[i].Availability < r.Components[j].Availability })
	r.Availability = a
	r.Nines = Nines(a)
	r.Meets = r.Target == 0 || a >= r.Target
	return r
}

func target(s *model.System, ep model.Entrypoint) float64 {
	if ep.SLO != nil && ep.SLO.Availability > 0 {
		return ep.SLO.Availability
	}
	if s.SLO != nil {
		return s.SLO.Availability
	}
	return 0
}
