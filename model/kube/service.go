package kube

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/hostref"
)

// kService is a Kubernetes Service: the DNS name other workloads call, and what answers it.
type kService struct {
	obj       *object
	name, ns  string
	typ       string
	ports     []svcPort
	targets   []*workload // workloads whose pods the selector matches
	external  string      // external component for ExternalName, selectorless or unmatched Services
	host      string      // externalName
	unmatched bool
}

type svcPort struct {
	name, appProtocol string
	port              int
}

// readService records a Service and the workloads it selects.
func (im *importer) readService(o *object) {
	if o.name == "" {
		o.root.get("metadata").fail("metadata.name is missing")
		return
	}
	key := o.namespace + "/" + o.name
	if prev := im.services[key]; prev != nil {
		im.warnf(o.src, "Service %s in namespace %s is defined again (first at %s); keeping the first", o.name, o.namespace, prev.obj.src)
		return
	}
	spec := o.spec()
	s := &kService{obj: o, name: o.name, ns: o.namespace, typ: spec.get("type").str()}
	for _, p := range spec.get("ports").list() {
		port, _ := p.get("port").integer()
		s.ports = append(s.ports, svcPort{name: p.get("name").str(), appProtocol: p.get("appProtocol").str(), port: port})
	}
	sel := spec.get("selector").strMap()
	switch {
	case s.typ == "ExternalName":
		s.host = strings.ToLower(strings.TrimSuffix(spec.get("externalName").str(), "."))
		s.external = im.addExternal(s.name, s.ns, s.host, o.src)
		if s.host != "" {
			if _, ok := im.extByHost[s.host]; !ok {
				im.extByHost[s.host] = s.external
			}
		}
	case len(sel) == 0:
		// Endpoints managed by hand or by a controller outside the manifests.
		s.external = im.addExternal(s.name, s.ns, "", o.src)
	default:
		s.targets = im.selectWorkloads(s.ns, selector{labels: sel})
		if len(s.targets) == 0 {
			s.unmatched = true
			im.warnf(o.src, "Service %s selects no workload in the input (selector %s); calls to it go to an external node", o.name, formatLabels(sel))
		}
	}
	im.services[key] = s
	im.svcByName[s.name] = append(im.svcByName[s.name], s)
	im.svcOrder = append(im.svcOrder, s)
	im.namespaces[s.ns] = true
}

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// addExternal adds an external node for a Service or host, named after it (name.namespace when a
// workload already has the name), and returns the name used.
func (im *importer) addExternal(name, ns, host string, src model.Source) string {
	if k, taken := im.b.Kind(name); taken && k != model.KindExternal {
		name = name + "." + ns
	}
	im.b.AddExternal(model.External{Name: name, Host: host, Source: src})
	return name
}

// readServiceEntry adds the hosts an Istio ServiceEntry declares as external nodes that references
// can resolve to.
func (im *importer) readServiceEntry(o *object) {
	for _, h := range o.spec().get("hosts").list() {
		host := strings.ToLower(strings.TrimSuffix(h.str(), "."))
		if host == "" {
			continue
		}
		if strings.HasPrefix(host, "*") {
			name := im.addExternal(host, o.namespace, host, h.src())
			im.extWildcards = append(im.extWildcards, wildcard{suffix: strings.TrimPrefix(host, "*"), name: name})
			continue
		}
		if _, ok := im.extByHost[host]; ok {
			continue
		}
		im.extByHost[host] = im.addExternal(host, o.namespace, host, h.src())
	}
}

// target is what a host resolves to.
type target struct {
	names []string  // components that answer; several when a Service selects several workloads
	svc   *kService // the Service the host named, for its port names
	note  string    // a remark worth a warning (resolved across namespaces, no Service)
}

// resolve maps a host written in a workload's configuration to the components that answer it,
// the way cluster DNS would from namespace ns: svc, svc.ns, svc.ns.svc[.cluster.local], and
// pod.svc... for StatefulSet pods; then ServiceEntry and ExternalName hosts.
func (im *importer) resolve(host, ns string) (target, bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if name, ok := im.extByHost[h]; ok {
		return target{names: []string{name}}, true
	}
	short := h
	if i := strings.Index(short, ".svc."); i >= 0 {
		short = short[:i]
	} else {
		short = strings.TrimSuffix(short, ".svc")
	}
	parts := strings.Split(short, ".")
	type cand struct{ name, ns string }
	var cands []cand
	switch len(parts) {
	case 1:
		cands = append(cands, cand{parts[0], ns})
	case 2:
		if im.namespaces[parts[1]] {
			cands = append(cands, cand{parts[0], parts[1]})
		}
		cands = append(cands, cand{parts[1], ns}) // pod.service
	case 3:
		if im.namespaces[parts[2]] {
			cands = append(cands, cand{parts[1], parts[2]})
		}
	}
	for _, c := range cands {
		if s := im.services[c.ns+"/"+c.name]; s != nil {
			return im.serviceTarget(s), true
		}
	}
	if len(parts) == 1 {
		if list := im.svcByName[h]; len(list) == 1 {
			t := im.serviceTarget(list[0])
			t.note = fmt.Sprintf("host %s resolved to Service %s in namespace %s, which cluster DNS would not find from namespace %s (it needs %s.%s)", host, h, list[0].ns, ns, h, list[0].ns)
			return t, true
		}
		if _, ok := im.compNS[h]; ok && len(im.svcByName[h]) == 0 {
			if k, ok := im.b.Kind(h); ok && k != model.KindExternal {
				return target{names: []string{h}, note: fmt.Sprintf("host %s names workload %s, but no Service in the input selects it", host, h)}, true
			}
		}
	}
	for _, w := range im.extWildcards {
		if strings.HasSuffix(h, w.suffix) {
			return target{names: []string{w.name}}, true
		}
	}
	return target{}, false
}

// serviceTarget returns what answers a Service, creating the external node for a Service whose
// selector matches nothing in the input the first time it is called.
func (im *importer) serviceTarget(s *kService) target {
	if s.external == "" && s.unmatched {
		s.external = im.addExternal(s.name, s.ns, "", s.obj.src)
	}
	if s.external != "" {
		return target{names: []string{s.external}, svc: s}
	}
	names := make([]string, 0, len(s.targets))
	for _, wl := range s.targets {
		if !containsString(names, wl.name) {
			names = append(names, wl.name)
		}
	}
	return target{names: names, svc: s}
}

// portHint is the protocol a Service port's appProtocol or name announces for a referenced port.
func (s *kService) portHint(port int) string {
	var p *svcPort
	for i := range s.ports {
		if s.ports[i].port == port && port != 0 {
			p = &s.ports[i]
			break
		}
	}
	if p == nil && port == 0 && len(s.ports) == 1 {
		p = &s.ports[0]
	}
	if p == nil {
		return ""
	}
	if h := protocolHint(p.appProtocol); h != "" {
		return h
	}
	return protocolHint(p.name)
}

// protocolHint maps a port name or appProtocol to a model protocol. Port names follow Istio's
// <protocol>[-<suffix>] convention (http-web, grpc-web, tcp-db); appProtocol may be an IANA name
// or kubernetes.io/h2c, kubernetes.io/ws.
func protocolHint(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "kubernetes.io/")
	if strings.HasPrefix(s, "grpc-web") {
		return "grpc"
	}
	if i := strings.IndexAny(s, "-_"); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "http", "http2", "https", "h2c", "h2", "http1":
		return "http"
	case "grpc", "grpcs":
		return "grpc"
	case "tcp", "tls", "udp", "mongo", "mongodb", "cassandra", "memcached", "zookeeper", "zk":
		return "tcp"
	case "mysql", "postgres", "postgresql", "pg", "sql", "mssql", "mariadb":
		return "sql"
	case "redis", "rediss":
		return "redis"
	case "kafka":
		return "kafka"
	case "amqp", "amqps", "rabbitmq":
		return "amqp"
	case "nats":
		return "nats"
	case "mqtt", "mqtts":
		return "mqtt"
	case "ws", "wss", "websocket":
		return "websocket"
	case "graphql":
		return "graphql"
	}
	return ""
}

var userinfoRE = regexp.MustCompile(`(://)[^/@\s]*@`)

// redact drops credentials from an address kept as evidence (postgres://user:pw@db → postgres://db).
func redact(raw string) string { return userinfoRE.ReplaceAllString(raw, "$1") }

// link adds the edges a host reference in a workload's configuration implies.
func (im *importer) link(from *workload, ref hostref.Ref, src model.Source) {
	if from.ck == model.KindDatastore {
		// The model has edges start at services and brokers; a datastore naming another (a
		// replica naming its primary) is replication, not a call.
		return
	}
	ref.Raw = redact(ref.Raw)
	t, ok := im.resolve(ref.Host, from.ns)
	if !ok {
		im.warnf(src, "host %s matches no workload; added as external", ref.Host)
		to := im.b.EdgeFromRef(from.name, ref, func(string) (string, bool) { return "", false }, src)
		im.noteEdge(from.name, to)
		return
	}
	if t.note != "" {
		im.warnf(src, "%s", t.note)
	}
	proto := hostref.ProtocolForScheme(ref.Scheme)
	var tls *bool
	if ref.TLS {
		v := true
		tls = &v
	}
	for _, to := range t.names {
		p := proto
		if p == "" && t.svc != nil {
			p = t.svc.portHint(ref.Port)
			if k, _ := im.b.Kind(to); p == "tcp" && (k == model.KindDatastore || k == model.KindBroker) {
				p = "" // the engine's protocol says more than a generic tcp port name
			}
		}
		e := model.Edge{From: from.name, To: to, Protocol: p, Address: ref.Raw, TLS: tls, Source: src}
		if len(t.names) > 1 {
			// The Service spreads calls over the workloads it selects (versions, canaries).
			e.CallsPerRequest = math.Round(1000/float64(len(t.names))) / 1000
		}
		im.b.AddEdge(e)
		im.noteEdge(from.name, to)
	}
}

func (im *importer) noteEdge(from, to string) {
	if from == to {
		return
	}
	k := [2]string{from, to}
	if im.edgeSeen[k] {
		return
	}
	if im.b.Edge(from, to) == nil {
		return
	}
	im.edgeSeen[k] = true
	im.into[to] = append(im.into[to], from)
}
