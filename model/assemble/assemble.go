// Package assemble builds a model.System from what an importer reads: it keeps components unique,
// resolves host references to components (or to external nodes), merges repeated edges, and records
// warnings. The compose and Kubernetes importers share it so both map configuration the same way.
package assemble

import (
	"fmt"
	"slices"
	"sort"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/catalog"
	"github.com/faultline-dev/faultline/model/hostref"
)

// Builder accumulates a system.
type Builder struct {
	sys   model.System
	kinds map[string]model.ComponentKind
	edges map[[2]string]int
}

// New starts a system with a name.
func New(name string) *Builder {
	b := &Builder{kinds: map[string]model.ComponentKind{}, edges: map[[2]string]int{}}
	b.sys.APIVersion = model.APIVersion
	b.sys.Kind = model.KindSystem
	b.sys.Metadata.Name = name
	return b
}

// Kind returns the kind of a component already added.
func (b *Builder) Kind(name string) (model.ComponentKind, bool) {
	k, ok := b.kinds[name]
	return k, ok
}

func (b *Builder) claim(name string, k model.ComponentKind, src model.Source) bool {
	if prev, dup := b.kinds[name]; dup {
		b.Warn(model.At(src, "", "%s %q is defined again (already a %s); keeping the first", k, name, prev))
		return false
	}
	b.kinds[name] = k
	return true
}

// AddService adds a service; a second component with the same name is dropped with a warning.
func (b *Builder) AddService(s model.Service) {
	if b.claim(s.Name, model.KindService, s.Source) {
		b.sys.Services = append(b.sys.Services, s)
	}
}

// AddDatastore adds a datastore.
func (b *Builder) AddDatastore(d model.Datastore) {
	if b.claim(d.Name, model.KindDatastore, d.Source) {
		b.sys.Datastores = append(b.sys.Datastores, d)
	}
}

// AddBroker adds a broker.
func (b *Builder) AddBroker(br model.Broker) {
	if b.claim(br.Name, model.KindBroker, br.Source) {
		b.sys.Brokers = append(b.sys.Brokers, br)
	}
}

// AddExternal adds an external node unless one with that name exists.
func (b *Builder) AddExternal(e model.External) {
	if _, ok := b.kinds[e.Name]; ok {
		return
	}
	b.kinds[e.Name] = model.KindExternal
	b.sys.Externals = append(b.sys.Externals, e)
}

// AddComponent adds a workload as a datastore or broker when its image is in the recognition table
// (unless its name marks a tool around the engine, such as db-backup), and as a service otherwise.
// It returns the kind chosen.
func (b *Builder) AddComponent(name, image string, replicas int, w *model.Workload, src model.Source) model.ComponentKind {
	if e, ok := catalog.Recognize(image); ok && !catalog.IsTool(name) {
		switch e.Kind {
		case model.KindDatastore:
			b.AddDatastore(model.Datastore{Name: name, Kind: e.Engine, Replicas: replicas, Workload: w, Source: src})
		case model.KindBroker:
			b.AddBroker(model.Broker{Name: name, Kind: e.Engine, Replicas: replicas, Workload: w, Source: src})
		}
		return e.Kind
	}
	b.AddService(model.Service{Name: name, Replicas: replicas, Workload: w, Source: src})
	return model.KindService
}

// Service returns the service added under name, for the importer to fill in more fields. The
// pointer is valid until the next AddService (Datastore, Broker and Edge likewise).
func (b *Builder) Service(name string) *model.Service { return b.sys.Service(name) }

// Datastore returns the datastore added under name.
func (b *Builder) Datastore(name string) *model.Datastore { return b.sys.Datastore(name) }

// Broker returns the broker added under name.
func (b *Builder) Broker(name string) *model.Broker { return b.sys.Broker(name) }

// AddEdge adds an edge, or merges it into an existing edge between the same two components (the
// first source is kept; protocol, TLS and address fill in where unset). An edge to a datastore also
// lists the datastore on the calling service.
func (b *Builder) AddEdge(e model.Edge) {
	if e.From == e.To {
		return
	}
	key := [2]string{e.From, e.To}
	if i, ok := b.edges[key]; ok {
		cur := &b.sys.Edges[i]
		if cur.Protocol == "" {
			cur.Protocol = e.Protocol
		}
		if cur.TLS == nil {
			cur.TLS = e.TLS
		}
		if cur.Address == "" {
			cur.Address = e.Address
		}
		if cur.Policy == nil {
			cur.Policy = e.Policy
		}
		return
	}
	if e.Protocol == "" {
		e.Protocol = b.protocolTo(e.To)
	}
	b.edges[key] = len(b.sys.Edges)
	b.sys.Edges = append(b.sys.Edges, e)
	if b.kinds[e.To] == model.KindDatastore {
		if s := b.sys.Service(e.From); s != nil && !contains(s.Datastores, e.To) {
			s.Datastores = append(s.Datastores, e.To)
		}
	}
}

// Edge returns the edge between two components, or nil.
func (b *Builder) Edge(from, to string) *model.Edge {
	if i, ok := b.edges[[2]string{from, to}]; ok {
		return &b.sys.Edges[i]
	}
	return nil
}

func (b *Builder) protocolTo(name string) string {
	if d := b.sys.Datastore(name); d != nil {
		return catalog.ProtocolFor(d.Kind)
	}
	if br := b.sys.Broker(name); br != nil {
		return catalog.ProtocolFor(br.Kind)
	}
	return ""
}

// Resolver maps a host written in configuration to a component name; ok is false when the host
// names nothing in the system.
type Resolver func(host string) (name string, ok bool)

// EdgeFromRef adds the edge that a host reference in from's configuration implies. A host that
// resolves to no component becomes an external node named after the host (IP literals included,
// so the review can flag hard-coded addresses). It returns the target's name.
func (b *Builder) EdgeFromRef(from string, ref hostref.Ref, resolve Resolver, src model.Source) string {
	to, ok := resolve(ref.Host)
	if !ok {
		to = ref.Host
		b.AddExternal(model.External{Name: to, Host: ref.Host, Source: src})
	}
	e := model.Edge{From: from, To: to, Protocol: hostref.ProtocolForScheme(ref.Scheme), Address: ref.Raw, Source: src}
	if ref.TLS {
		t := true
		e.TLS = &t
	}
	if e.Protocol == "" {
		e.Protocol = b.protocolTo(to)
	}
	b.AddEdge(e)
	return to
}

// AddEntrypoint adds an entrypoint; one with the same name as an earlier one is dropped with a
// warning.
func (b *Builder) AddEntrypoint(ep model.Entrypoint) {
	for _, e := range b.sys.Entrypoints {
		if e.Name == ep.Name {
			b.Warn(model.At(ep.Source, "", "entrypoint %q is defined again; keeping the first", ep.Name))
			return
		}
	}
	b.sys.Entrypoints = append(b.sys.Entrypoints, ep)
}

// EdgesInto returns pointers to the edges that end at a component, for an importer to attach the
// policy a mesh or gateway applies to every caller. The pointers are valid until the next AddEdge.
func (b *Builder) EdgesInto(to string) []*model.Edge {
	var out []*model.Edge
	for i := range b.sys.Edges {
		if b.sys.Edges[i].To == to {
			out = append(out, &b.sys.Edges[i])
		}
	}
	return out
}

// Warn records a non-fatal problem.
func (b *Builder) Warn(p model.Problem) { b.sys.Warnings = append(b.sys.Warnings, p) }

// Warnf records a non-fatal problem at a source.
func (b *Builder) Warnf(src model.Source, format string, args ...any) {
	b.Warn(model.Problem{File: src.File, Line: src.Line, Message: fmt.Sprintf(format, args...)})
}

// System returns the assembled system with defaults applied and elements sorted by name, so the
// output is the same whatever order the files were read in. The result is a copy: the builder can
// still be used (and looked up) afterwards.
func (b *Builder) System(sources []string) *model.System {
	s := b.sys
	s.Sources = sources
	s.Services = slices.Clone(s.Services)
	s.Datastores = slices.Clone(s.Datastores)
	s.Brokers = slices.Clone(s.Brokers)
	s.Externals = slices.Clone(s.Externals)
	s.Edges = slices.Clone(s.Edges)
	s.Entrypoints = slices.Clone(s.Entrypoints)
	s.Warnings = slices.Clone(s.Warnings)
	sort.SliceStable(s.Services, func(i, j int) bool { return s.Services[i].Name < s.Services[j].Name })
	sort.SliceStable(s.Datastores, func(i, j int) bool { return s.Datastores[i].Name < s.Datastores[j].Name })
	sort.SliceStable(s.Brokers, func(i, j int) bool { return s.Brokers[i].Name < s.Brokers[j].Name })
	sort.SliceStable(s.Externals, func(i, j int) bool { return s.Externals[i].Name < s.Externals[j].Name })
	sort.SliceStable(s.Edges, func(i, j int) bool {
		if s.Edges[i].From != s.Edges[j].From {
			return s.Edges[i].From < s.Edges[j].From
		}
		return s.Edges[i].To < s.Edges[j].To
	})
	for i := range s.Services {
		s.Services[i].Datastores = slices.Sorted(slices.Values(s.Services[i].Datastores))
	}
	s.ApplyDefaults()
	return &s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
