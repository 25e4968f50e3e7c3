package kube

import (
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

// entryName names an entrypoint after the object that routes to it and the host and path it
// routes: "shop-shop.example.com/api", "shop-api" without a host, or the object's name alone for
// a catch-all.
func entryName(base, host, path string) string {
	if host == "*" {
		host = ""
	}
	if host == "" {
		path = strings.TrimPrefix(path, "/")
	} else if path == "/" {
		path = ""
	}
	if s := host + path; s != "" {
		return base + "-" + s
	}
	return base
}

// addEntry records entrypoints into the services a route's backend resolves to.
func (im *importer) addEntry(what, base, host, path string, t target, src model.Source) {
	for _, name := range t.names {
		if k, _ := im.b.Kind(name); k != model.KindService {
			im.warnf(src, "%s routes outside traffic to %s %s; only services are entrypoints", what, k, name)
			continue
		}
		n := entryName(base, host, path)
		if len(t.names) > 1 {
			n += "-" + name
		}
		if im.entryNames[n+"\x00"+name] {
			continue // the same route written twice
		}
		im.entryNames[n+"\x00"+name] = true
		unique := n
		for i := 2; im.entryNames[unique]; i++ {
			unique = n + "-" + strconv.Itoa(i)
		}
		im.entryNames[unique] = true
		im.entrypoints = append(im.entrypoints, model.Entrypoint{Name: unique, Service: name, Path: path, Source: src})
	}
}

// serviceBackend resolves a backend Service by name in a namespace.
func (im *importer) serviceBackend(what, name, ns string, src model.Source) (target, bool) {
	s := im.services[ns+"/"+name]
	if s == nil {
		im.warnf(src, "%s routes to Service %s, which is not in the input", what, name)
		return target{}, false
	}
	return im.serviceTarget(s), true
}

// readIngress turns each rule path (and the default backend) of an Ingress into an entrypoint.
func (im *importer) readIngress(o *object) {
	im.routed = true
	what := "Ingress " + o.name
	spec := o.spec()
	backend := func(b node) string {
		if s := b.get("service"); s.present() {
			return s.get("name").str()
		}
		return b.get("serviceName").str() // extensions/v1beta1
	}
	for _, key := range []string{"defaultBackend", "backend"} {
		if b := spec.get(key); b.present() {
			if name := backend(b); name != "" {
				if t, ok := im.serviceBackend(what, name, o.namespace, b.src()); ok {
					im.addEntry(what, o.name, "", "", t, b.src())
				}
			}
		}
	}
	for _, rule := range spec.get("rules").list() {
		host := rule.get("host").str()
		for _, p := range rule.get("http").get("paths").list() {
			name := backend(p.get("backend"))
			if name == "" {
				continue
			}
			if t, ok := im.serviceBackend(what, name, o.namespace, p.src()); ok {
				im.addEntry(what, o.name, host, p.get("path").str(), t, p.src())
			}
		}
	}
}

// readRoute reads a Gateway API HTTPRoute or GRPCRoute. A route attached to a Gateway is outside
// traffic: its backends become entrypoints. A route attached to a Service (GAMMA mesh routing)
// governs calls inside the mesh: its request timeout goes on the edges into that Service.
func (im *importer) readRoute(o *object) {
	spec := o.spec()
	what := o.kind + " " + o.name
	var meshParents []string
	gateways := 0
	for _, pr := range spec.get("parentRefs").list() {
		if pr.get("kind").str() == "Service" {
			meshParents = append(meshParents, pr.get("name").str())
		} else {
			gateways++
		}
	}
	rules := spec.get("rules").list()
	if len(meshParents) > 0 {
		var p model.Policy
		for _, r := range rules {
			if p.Timeout == 0 {
				p.Timeout = r.get("timeouts").get("request").duration()
			}
		}
		if p.Timeout != 0 {
			for _, name := range meshParents {
				if t, ok := im.serviceBackend(what, name, o.namespace, o.src); ok {
					im.edgesInto(t.names, func(e *model.Edge) { mergePolicy(e, p) })
				}
			}
		}
	}
	if gateways == 0 && len(meshParents) > 0 {
		return
	}
	im.routed = true
	host := ""
	if hs := spec.get("hostnames").strings(); len(hs) > 0 {
		host = hs[0]
	}
	for _, r := range rules {
		path := ""
		for _, m := range r.get("matches").list() {
			if v := m.get("path").get("value").str(); v != "" {
				path = v
				break
			}
			if meth := m.get("method"); meth.present() {
				path = strings.Trim(meth.get("service").str()+"/"+meth.get("method").str(), "/")
				break
			}
		}
		for _, br := range r.get("backendRefs").list() {
			if k := br.get("kind").str(); k != "" && k != "Service" {
				continue
			}
			ns := br.get("namespace").str()
			if ns == "" {
				ns = o.namespace
			}
			if t, ok := im.serviceBackend(what, br.get("name").str(), ns, br.src()); ok {
				im.addEntry(what, o.name, host, path, t, br.src())
			}
		}
	}
}

// exposedServices makes LoadBalancer and NodePort Services entrypoints when nothing else routes
// outside traffic in.
func (im *importer) exposedServices() {
	for _, s := range im.svcOrder {
		if s.typ != "LoadBalancer" && s.typ != "NodePort" || len(s.targets) == 0 {
			continue
		}
		im.addEntry("Service "+s.name, s.name, "", "", im.serviceTarget(s), s.obj.src)
	}
}
