// Package kube imports Kubernetes and Istio manifests into a faultline model.
//
// It reads plain YAML or JSON manifests (multi-document files, List kinds, whole directories) into
// a model.System: workloads become services, datastores or brokers (recognized by image); Services
// map the DNS names other workloads use back to the workloads they select; host names in
// environment variables, ConfigMaps, Secrets and command lines become edges; Istio
// DestinationRules, VirtualServices and PeerAuthentications become the policies, TLS and
// authentication of the edges into the hosts they govern; Ingresses, Gateway API routes and
// gateway-bound VirtualServices become entrypoints.
//
// Every element keeps the file and line it was read from. Bad input (broken YAML, wrong types in
// the fields read, Helm templates, binary or oversized files) is reported all at once as
// model.Problems; remarks that do not stop the import (a host that matches no workload, a
// VirtualService that injects faults) go to System.Warnings. The importer never decodes through
// k8s.io/api: it walks YAML nodes, so it stays light and every value keeps its line.
package kube

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/assemble"
)

// Options tune an import.
type Options struct {
	// Name is the system name. Default: the one namespace the manifests name, else the base name of
	// the first path.
	Name string
	// Namespace is the namespace of objects that name none. Default "default".
	Namespace string
}

// Skipped is an object the importer read but does not model: a kind it does not interpret
// (ServiceAccount, NetworkPolicy, a custom resource...) or one owned by a workload it models.
type Skipped struct {
	Kind, Name string
	Source     model.Source
}

// Import reads manifests from files and directories (walked recursively for .yaml, .yml and .json)
// and returns the system they describe and the objects it skipped. Input problems are returned
// together as model.Problems.
func Import(ctx context.Context, paths []string, opts Options) (*model.System, []Skipped, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if len(paths) == 0 {
		return nil, nil, model.Problems{{Message: "no manifest files or directories given"}}
	}
	im := newImporter(opts)
	files, err := model.ExpandPaths(paths, model.IsYAMLName)
	if err != nil {
		im.addError(err)
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("import manifests: %w", err)
		}
		data, err := model.ReadInput(f)
		if err != nil {
			im.addError(err)
			continue
		}
		im.readFile(f, data)
	}
	if len(im.probs) == 0 && len(im.objects) == 0 {
		im.probs = append(im.probs, model.Problem{File: paths[0], Message: "no Kubernetes objects found (documents with apiVersion and kind)"})
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("import manifests: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = im.defaultName(paths[0])
	}
	im.b = assemble.New(name)
	for _, w := range im.pendingWarnings {
		im.b.Warn(w)
	}
	// Build even when some files were bad, so the problems in the good ones are reported too.
	im.build()
	if len(im.probs) > 0 {
		sort.SliceStable(im.probs, func(i, j int) bool {
			a, b := im.probs[i], im.probs[j]
			if a.File != b.File {
				return a.File < b.File
			}
			return a.Line < b.Line
		})
		return nil, nil, im.probs
	}
	sys := im.b.System(files)
	sys.Entrypoints = append(sys.Entrypoints, im.entrypoints...)
	return sys, im.skipped, nil
}

// importer holds the state of one import.
type importer struct {
	opts    Options
	b       *assemble.Builder
	probs   model.Problems
	objects []*object
	skipped []Skipped

	pendingWarnings []model.Problem // warnings found before the builder exists
	warned          map[string]bool

	configMaps    map[string]*dataObject // namespace/name
	secrets       map[string]*dataObject
	missingData   map[string]bool
	workloads     []*workload
	workloadByKey map[string]*workload // kind/namespace/name
	podIndex      map[string]map[string][]*workload
	compNS        map[string]string // component name → namespace
	namespaces    map[string]bool
	services      map[string]*kService // namespace/name
	svcByName     map[string][]*kService
	svcOrder      []*kService
	extByHost     map[string]string // ServiceEntry or ExternalName host → external name
	extWildcards  []wildcard
	into          map[string][]string // target → callers, in the order edges were added
	edgeSeen      map[[2]string]bool
	entrypoints   []model.Entrypoint
	entryNames    map[string]bool
	routed        bool // an Ingress, route or gateway-bound VirtualService was read
}

type wildcard struct{ suffix, name string }

func newImporter(opts Options) *importer {
	return &importer{
		opts: opts, warned: map[string]bool{},
		configMaps: map[string]*dataObject{}, secrets: map[string]*dataObject{}, missingData: map[string]bool{},
		workloadByKey: map[string]*workload{}, podIndex: map[string]map[string][]*workload{},
		compNS: map[string]string{}, namespaces: map[string]bool{}, services: map[string]*kService{},
		svcByName: map[string][]*kService{}, extByHost: map[string]string{}, into: map[string][]string{},
		edgeSeen: map[[2]string]bool{}, entryNames: map[string]bool{},
	}
}

func (im *importer) addError(err error) {
	var ps model.Problems
	if errors.As(err, &ps) {
		im.probs = append(im.probs, ps...)
		return
	}
	im.probs = append(im.probs, model.Problem{Message: err.Error()})
}

// warnf records a warning once.
func (im *importer) warnf(src model.Source, format string, args ...any) {
	p := model.Problem{File: src.File, Line: src.Line, Message: fmt.Sprintf(format, args...)}
	key := p.String()
	if im.warned[key] {
		return
	}
	im.warned[key] = true
	if im.b == nil {
		im.pendingWarnings = append(im.pendingWarnings, p)
		return
	}
	im.b.Warn(p)
}

func (im *importer) skip(o *object) {
	im.skipped = append(im.skipped, Skipped{Kind: o.kind, Name: o.name, Source: o.src})
}

// defaultName is the one namespace the manifests name, else the first path's base name.
func (im *importer) defaultName(first string) string {
	seen := map[string]bool{}
	for _, o := range im.objects {
		if o.nsWritten {
			seen[o.namespace] = true
		}
		if o.kind == "Namespace" && o.group == "" && o.name != "" {
			seen[o.name] = true
		}
	}
	if len(seen) == 1 {
		for ns := range seen {
			return ns
		}
	}
	base := filepath.Base(filepath.Clean(first))
	if base == "." || base == string(filepath.Separator) {
		if abs, err := filepath.Abs(first); err == nil {
			base = filepath.Base(abs)
		}
	}
	if ext := filepath.Ext(base); model.IsYAMLName(base) {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "" || base == "." || base == string(filepath.Separator) {
		return "system"
	}
	return base
}

// role says how the importer treats an object's kind.
type role int

const (
	roleSkip role = iota
	roleWorkload
	roleService
	roleConfigMap
	roleSecret
	roleHPA
	rolePDB
	roleDestinationRule
	roleVirtualService
	rolePeerAuthentication
	roleServiceEntry
	roleIstioGateway
	roleGateway
	roleRoute
	roleIngress
	roleNamespace
	roleKustomization
)

// roleOf classifies an object by kind and API group, so a custom resource that borrows a core name
// (Knative's serving.knative.dev Service) is not read as the core kind.
func roleOf(o *object) role {
	g := o.group
	switch o.kind {
	case "Deployment", "DaemonSet", "ReplicaSet":
		if g == "apps" || g == "extensions" {
			return roleWorkload
		}
	case "StatefulSet":
		if g == "apps" {
			return roleWorkload
		}
	case "Pod":
		if g == "" {
			return roleWorkload
		}
	case "Rollout":
		if g == "argoproj.io" {
			return roleWorkload
		}
	case "Service":
		if g == "" {
			return roleService
		}
	case "ConfigMap":
		if g == "" {
			return roleConfigMap
		}
	case "Secret":
		if g == "" {
			return roleSecret
		}
	case "Namespace":
		if g == "" {
			return roleNamespace
		}
	case "HorizontalPodAutoscaler":
		if g == "autoscaling" {
			return roleHPA
		}
	case "PodDisruptionBudget":
		if g == "policy" {
			return rolePDB
		}
	case "DestinationRule":
		if g == "networking.istio.io" {
			return roleDestinationRule
		}
	case "VirtualService":
		if g == "networking.istio.io" {
			return roleVirtualService
		}
	case "ServiceEntry":
		if g == "networking.istio.io" {
			return roleServiceEntry
		}
	case "PeerAuthentication":
		if g == "security.istio.io" {
			return rolePeerAuthentication
		}
	case "Gateway":
		switch g {
		case "networking.istio.io":
			return roleIstioGateway
		case "gateway.networking.k8s.io":
			return roleGateway
		}
	case "HTTPRoute", "GRPCRoute":
		if g == "gateway.networking.k8s.io" {
			return roleRoute
		}
	case "Ingress":
		if g == "networking.k8s.io" || g == "extensions" {
			return roleIngress
		}
	case "Kustomization":
		if g == "kustomize.config.k8s.io" {
			return roleKustomization
		}
	}
	return roleSkip
}

// build turns the objects read into the system, in dependency order: data for resolution,
// workloads, the Services and hosts that name them, the edges their configuration implies, then
// what decorates workloads and edges (autoscalers, budgets, mesh policy) and the entrypoints.
func (im *importer) build() {
	byRole := map[role][]*object{}
	first := map[string]*object{}
	for _, o := range im.objects {
		r := roleOf(o)
		if r != roleSkip && r != roleWorkload && o.name != "" {
			// Workloads are checked by the builder, which names the component kept.
			key := o.group + "/" + o.kind + "/" + o.namespace + "/" + o.name
			if prev := first[key]; prev != nil {
				im.warnf(o.src, "%s %s in namespace %s is defined again (first at %s); keeping the first", o.kind, o.name, o.namespace, prev.src)
				continue
			}
			first[key] = o
		}
		if o.owned && r == roleWorkload {
			im.skip(o)
			continue
		}
		switch r {
		case roleSkip, roleNamespace:
			im.skip(o)
			if r == roleNamespace && o.name != "" {
				im.namespaces[o.name] = true
			}
			continue
		case roleKustomization:
			im.skip(o)
			im.warnf(o.src, "a kustomization: its patches and generators are not applied; render the directory with `kubectl kustomize` first")
			continue
		}
		byRole[r] = append(byRole[r], o)
	}
	for _, o := range byRole[roleConfigMap] {
		im.readData(o, im.configMaps, false)
	}
	for _, o := range byRole[roleSecret] {
		im.readData(o, im.secrets, true)
	}
	for _, o := range byRole[roleWorkload] {
		im.readWorkload(o)
	}
	for _, o := range byRole[roleServiceEntry] {
		im.readServiceEntry(o)
	}
	for _, o := range byRole[roleService] {
		im.readService(o)
	}
	for _, wl := range im.workloads {
		im.readConfiguration(wl)
	}
	for _, o := range byRole[roleHPA] {
		im.readHPA(o)
	}
	for _, o := range byRole[rolePDB] {
		im.readPDB(o)
	}
	for _, o := range byRole[roleDestinationRule] {
		im.readDestinationRule(o)
	}
	for _, o := range byRole[roleVirtualService] {
		im.readVirtualService(o)
	}
	im.applyPeerAuthentication(byRole[rolePeerAuthentication])
	for _, o := range byRole[roleIngress] {
		im.readIngress(o)
	}
	for _, o := range byRole[roleRoute] {
		im.readRoute(o)
	}
	if !im.routed {
		im.exposedServices()
	}
	if len(im.entrypoints) == 0 && len(im.workloads) > 0 {
		im.warnf(model.Source{}, "no Ingress, Gateway route or LoadBalancer/NodePort Service reaches a service; the model has no entrypoints")
	}
	sort.SliceStable(im.entrypoints, func(i, j int) bool { return im.entrypoints[i].Name < im.entrypoints[j].Name })
}
