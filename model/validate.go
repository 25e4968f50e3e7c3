package model

import (
	"fmt"
	"sort"

	"github.com/faultline-dev/faultline/internal/suggest"
)

// ComponentKind says what sort of node a component is in the graph.
type ComponentKind string

// The component kinds. They share one namespace: a name means one component.
const (
	KindService   ComponentKind = "service"
	KindDatastore ComponentKind = "datastore"
	KindBroker    ComponentKind = "broker"
	KindExternal  ComponentKind = "external"
)

// Component is the part every node of the graph has in common.
type Component struct {
	Name     string
	Kind     ComponentKind
	Replicas int
	Zones    []string
	Source   Source
}

// Components lists every service, datastore, broker and external, in that order.
func (s *System) Components() []Component {
	out := make([]Component, 0, len(s.Services)+len(s.Datastores)+len(s.Brokers)+len(s.Externals))
	for _, c := range s.Services {
		out = append(out, Component{c.Name, KindService, c.Replicas, c.Zones, c.Source})
	}
	for _, c := range s.Datastores {
		out = append(out, Component{c.Name, KindDatastore, c.Replicas, c.Zones, c.Source})
	}
	for _, c := range s.Brokers {
		out = append(out, Component{c.Name, KindBroker, c.Replicas, c.Zones, c.Source})
	}
	for _, c := range s.Externals {
		out = append(out, Component{c.Name, KindExternal, 1, nil, c.Source})
	}
	return out
}

// Service returns the service with that name, or nil.
func (s *System) Service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// Datastore returns the datastore with that name, or nil.
func (s *System) Datastore(name string) *Datastore {
	for i := range s.Datastores {
		if s.Datastores[i].Name == name {
			return &s.Datastores[i]
		}
	}
	return nil
}

// Broker returns the broker with that name, or nil.
func (s *System) Broker(name string) *Broker {
	for i := range s.Brokers {
		if s.Brokers[i].Name == name {
			return &s.Brokers[i]
		}
	}
	return nil
}

// asyncProtocols are carried by brokers; an edge over one is asynchronous unless it says otherwise.
var asyncProtocols = map[string]bool{"nats": true, "kafka": true, "amqp": true, "mqtt": true}

// ApplyDefaults fills the fields whose absence has a documented meaning: one replica, one call per
// request, the mode implied by the protocol or target, the API version and kind.
func (s *System) ApplyDefaults() {
	if s.APIVersion == "" {
		s.APIVersion = APIVersion
	}
	if s.Kind == "" {
		s.Kind = KindSystem
	}
	brokers := map[string]bool{}
	for i := range s.Brokers {
		if s.Brokers[i].Replicas == 0 {
			s.Brokers[i].Replicas = 1
		}
		brokers[s.Brokers[i].Name] = true
	}
	for i := range s.Services {
		if s.Services[i].Replicas == 0 {
			s.Services[i].Replicas = 1
		}
	}
	for i := range s.Datastores {
		if s.Datastores[i].Replicas == 0 {
			s.Datastores[i].Replicas = 1
		}
	}
	for i := range s.Edges {
		e := &s.Edges[i]
		if e.CallsPerRequest == 0 {
			e.CallsPerRequest = 1
		}
		if e.Mode == "" {
			if asyncProtocols[e.Protocol] || brokers[e.To] || brokers[e.From] {
				e.Mode = ModeAsync
			} else {
				e.Mode = ModeSync
			}
		}
	}
}

// Edge modes.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// Validate checks what the schema cannot: unique names, edges and entrypoints that name existing
// components, datastore references, duplicate edges. It returns every problem found.
func Validate(s *System) Problems {
	var probs Problems
	kinds := map[string]Component{}
	var names []string
	perKind := map[ComponentKind]int{}
	for _, c := range s.Components() {
		field := fmt.Sprintf("%ss[%d].name", c.Kind, perKind[c.Kind])
		perKind[c.Kind]++
		if c.Name == "" {
			probs = append(probs, At(c.Source, field, "a %s without a name", c.Kind))
			continue
		}
		if prev, dup := kinds[c.Name]; dup {
			where := ""
			if prev.Source.String() != "" {
				where = " at " + prev.Source.String()
			}
			probs = append(probs, At(c.Source, field, "duplicate name %q: already used by a %s%s", c.Name, prev.Kind, where))
			continue
		}
		kinds[c.Name] = c
		names = append(names, c.Name)
	}
	sort.Strings(names)
	unknown := func(name string) string {
		return fmt.Sprintf("unknown component %q%s", name, suggest.Hint(name, names))
	}
	for i, svc := range s.Services {
		if svc.Replicas < 1 {
			probs = append(probs, At(svc.Source, fmt.Sprintf("services[%d].replicas", i), "must be at least 1, got %d", svc.Replicas))
		}
		for _, d := range svc.Datastores {
			c, ok := kinds[d]
			switch {
			case !ok:
				probs = append(probs, At(svc.Source, fmt.Sprintf("services[%d].datastores", i), "%s", unknown(d)))
			case c.Kind != KindDatastore:
				probs = append(probs, At(svc.Source, fmt.Sprintf("services[%d].datastores", i), "%q is a %s, not a datastore", d, c.Kind))
			}
		}
	}
	type edgeKey struct{ from, to, protocol, operation string }
	seenEdges := map[edgeKey]Source{}
	for i, e := range s.Edges {
		field := fmt.Sprintf("edges[%d]", i)
		from, fromOK := kinds[e.From]
		if !fromOK {
			probs = append(probs, At(e.Source, field+".from", "%s", unknown(e.From)))
		}
		if _, ok := kinds[e.To]; !ok {
			probs = append(probs, At(e.Source, field+".to", "%s", unknown(e.To)))
		}
		if fromOK && (from.Kind == KindDatastore || from.Kind == KindExternal) {
			probs = append(probs, At(e.Source, field+".from", "%q is a %s; edges start at a service or a broker", e.From, from.Kind))
		}
		k := edgeKey{e.From, e.To, e.Protocol, e.Operation}
		if prev, dup := seenEdges[k]; dup {
			probs = append(probs, At(e.Source, field, "duplicate edge %s → %s (%s) already declared at %s", e.From, e.To, orUnknown(e.Protocol), prev))
		} else {
			seenEdges[k] = e.Source
		}
		if p := e.Policy; p != nil && p.Retry != nil && p.Retry.MaxDelay != 0 && p.Retry.BaseDelay > p.Retry.MaxDelay {
			probs = append(probs, At(e.Source, field+".policy.retry", "baseDelay %s is longer than maxDelay %s", p.Retry.BaseDelay, p.Retry.MaxDelay))
		}
	}
	seenEntry := map[string]Source{}
	for i, ep := range s.Entrypoints {
		field := fmt.Sprintf("entrypoints[%d]", i)
		if prev, dup := seenEntry[ep.Name]; dup {
			probs = append(probs, At(ep.Source, field+".name", "duplicate entrypoint %q (first at %s)", ep.Name, prev))
		}
		seenEntry[ep.Name] = ep.Source
		c, ok := kinds[ep.Service]
		switch {
		case !ok:
			probs = append(probs, At(ep.Source, field+".service", "%s", unknown(ep.Service)))
		case c.Kind != KindService:
			probs = append(probs, At(ep.Source, field+".service", "%q is a %s; an entrypoint must be a service", ep.Service, c.Kind))
		}
	}
	sortProblems(probs)
	return probs
}

func orUnknown(s string) string {
	if s == "" {
		return "protocol unset"
	}
	return s
}

// IsSync reports whether an edge is synchronous (the caller waits).
func (e Edge) IsSync() bool { return e.Mode != ModeAsync }

// String names an edge as "from → to".
func (e Edge) String() string { return e.From + " → " + e.To }
