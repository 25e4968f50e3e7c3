package kube

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/model"
)

// Istio's defaults for outlier detection when a DestinationRule turns it on without saying
// (istio.io/latest/docs/reference/config/networking/destination-rule/#OutlierDetection).
const (
	istioConsecutiveErrors  = 5
	istioEjectionInterval   = model.Duration(10 * time.Second)
	istioBaseEjectionTime   = model.Duration(30 * time.Second)
	istioDefaultRetries     = 2
	envoyRetryBaseDelay     = model.Duration(25 * time.Millisecond)
	envoyRetryMaxDelay      = model.Duration(250 * time.Millisecond)
	istioRootNamespace      = "istio-system"
	istioMeshGateway        = "mesh"
	peerAuthenticationDepth = 3
)

// policyTargets resolves the host of a DestinationRule or VirtualService, as seen from the rule's
// namespace, to the components that answer it. Wildcard hosts (*.shop.svc.cluster.local, *) match
// Services by their full DNS name and ServiceEntry hosts by suffix.
func (im *importer) policyTargets(host, ns string) []string {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if h == "" {
		return nil
	}
	if !strings.HasPrefix(h, "*") {
		t, ok := im.resolve(h, ns)
		if !ok {
			return nil
		}
		return t.names
	}
	suffix := strings.TrimPrefix(h, "*")
	var out []string
	add := func(names []string) {
		for _, n := range names {
			if !containsString(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, s := range im.svcOrder {
		if strings.HasSuffix(s.name+"."+s.ns+".svc.cluster.local", suffix) {
			add(im.serviceTarget(s).names)
		}
	}
	hosts := make([]string, 0, len(im.extByHost))
	for eh := range im.extByHost {
		hosts = append(hosts, eh)
	}
	sort.Strings(hosts)
	for _, eh := range hosts {
		if strings.HasSuffix(eh, suffix) {
			add([]string{im.extByHost[eh]})
		}
	}
	return out
}

// edgesInto calls fn with every edge into the targets, caller by caller.
func (im *importer) edgesInto(targets []string, fn func(e *model.Edge)) {
	for _, to := range targets {
		for _, from := range im.into[to] {
			if e := im.b.Edge(from, to); e != nil {
				fn(e)
			}
		}
	}
}

// mergePolicy fills the parts of an edge's policy that are still unset.
func mergePolicy(e *model.Edge, p model.Policy) {
	if e.Policy == nil {
		e.Policy = &model.Policy{}
	}
	cur := e.Policy
	if cur.Timeout == 0 {
		cur.Timeout = p.Timeout
	}
	if cur.Retry == nil && p.Retry != nil {
		r := *p.Retry
		r.RetryOn = append([]string(nil), p.Retry.RetryOn...)
		cur.Retry = &r
	}
	if cur.CircuitBreaker == nil && p.CircuitBreaker != nil {
		cb := *p.CircuitBreaker
		cur.CircuitBreaker = &cb
	}
	if cur.Bulkhead == nil && p.Bulkhead != nil {
		b := *p.Bulkhead
		cur.Bulkhead = &b
	}
}

func setTLS(e *model.Edge, on bool, auth string) {
	v := on
	e.TLS = &v
	if auth != "" {
		e.Auth = auth
	}
}

// readDestinationRule turns a DestinationRule's traffic policy into the bulkhead, circuit breaker
// and TLS of every edge into its host.
func (im *importer) readDestinationRule(o *object) {
	spec := o.spec()
	host := spec.get("host").str()
	tp := spec.get("trafficPolicy")
	var p model.Policy

	cp := tp.get("connectionPool")
	maxConn, hasConn := cp.get("tcp").get("maxConnections").count()
	pending, hasPending := cp.get("http").get("http1MaxPendingRequests").count()
	maxReq, hasReq := cp.get("http").get("http2MaxRequests").count()
	if hasConn || hasPending || hasReq {
		// http2MaxRequests caps concurrent requests; without it, maxConnections caps them for
		// HTTP/1.1 and TCP (one request per connection at a time).
		b := &model.Bulkhead{MaxQueue: pending}
		if hasReq {
			b.MaxConcurrent = maxReq
		} else if hasConn {
			b.MaxConcurrent = maxConn
		}
		p.Bulkhead = b
	}

	if od := tp.get("outlierDetection"); od.present() {
		failures := istioConsecutiveErrors
		if n, ok := od.get("consecutive5xxErrors").count(); ok {
			failures = n
		} else if n, ok := od.get("consecutiveErrors").count(); ok {
			failures = n
		}
		if n, ok := od.get("consecutiveGatewayErrors").count(); ok && n > 0 && (failures == 0 || n < failures) {
			failures = n
		}
		window, open := istioEjectionInterval, istioBaseEjectionTime
		if d := od.get("interval"); d.present() {
			window = d.duration()
		}
		if d := od.get("baseEjectionTime"); d.present() {
			open = d.duration()
		}
		if failures > 0 {
			p.CircuitBreaker = &model.CircuitBreaker{ConsecutiveFailures: failures, Window: window, OpenDuration: open}
		}
	}

	mode := strings.ToUpper(tp.get("tls").get("mode").str())
	targets := im.policyTargets(host, o.namespace)
	if len(targets) == 0 {
		im.warnf(o.src, "DestinationRule %s: host %q matches no workload, Service or ServiceEntry in the input", o.name, host)
		return
	}
	im.edgesInto(targets, func(e *model.Edge) {
		if p.Bulkhead != nil || p.CircuitBreaker != nil {
			mergePolicy(e, p)
		}
		switch mode {
		case "ISTIO_MUTUAL", "MUTUAL":
			setTLS(e, true, "mtls")
		case "SIMPLE":
			setTLS(e, true, "")
		case "DISABLE":
			if e.TLS == nil {
				setTLS(e, false, "")
			}
		}
	})
}

// readVirtualService applies a mesh VirtualService's timeout and retries to every edge into its
// hosts, warns about fault injection, and turns the routes of a gateway-bound one into entrypoints.
func (im *importer) readVirtualService(o *object) {
	spec := o.spec()
	hosts := spec.get("hosts").strings()
	mesh := true
	var gateways []string
	if g := spec.get("gateways"); g.present() {
		mesh = false
		for _, name := range g.strings() {
			if name == istioMeshGateway {
				mesh = true
			} else {
				gateways = append(gateways, name)
			}
		}
	}
	routes := spec.get("http").list()
	for _, r := range routes {
		if f := r.get("fault"); f.present() {
			im.warnf(f.src(), "VirtualService %s injects faults into calls to %s: %s", o.name, strings.Join(hosts, ", "), describeFault(f))
		}
	}
	if mesh {
		var p model.Policy
		for _, r := range routes {
			if p.Timeout == 0 {
				p.Timeout = r.get("timeout").duration()
			}
			if rt := r.get("retries"); p.Retry == nil && rt.present() {
				p.Retry = readRetries(rt)
			}
		}
		if p.Timeout != 0 || p.Retry != nil {
			for _, h := range hosts {
				targets := im.policyTargets(h, o.namespace)
				if len(targets) == 0 {
					im.warnf(o.src, "VirtualService %s: host %q matches no workload, Service or ServiceEntry in the input", o.name, h)
					continue
				}
				im.edgesInto(targets, func(e *model.Edge) { mergePolicy(e, p) })
			}
		}
	}
	if len(gateways) == 0 {
		return
	}
	im.routed = true
	host := ""
	for _, h := range hosts {
		if h != "*" {
			host = h
			break
		}
	}
	for _, r := range routes {
		path := ""
		for _, m := range r.get("match").list() {
			uri := m.get("uri")
			for _, k := range []string{"exact", "prefix", "regex"} {
				if v := uri.get(k).str(); v != "" {
					path = v
					break
				}
			}
			if path != "" {
				break
			}
		}
		for _, d := range r.get("route").list() {
			dest := d.get("destination")
			dh := dest.get("host").str()
			if dh == "" {
				continue
			}
			t, ok := im.resolve(dh, o.namespace)
			if !ok {
				im.warnf(dest.src(), "VirtualService %s routes gateway traffic to %s, which matches no workload in the input", o.name, dh)
				continue
			}
			im.addEntry("VirtualService "+o.name, o.name, host, path, t, d.src())
		}
	}
}

// readRetries reads an Istio HTTPRetry. Istio counts retries, the model counts attempts; Envoy
// backs off between them exponentially with full jitter from 25ms to 250ms
// (envoyproxy.io, config.route.v3.RetryPolicy.retry_back_off).
func readRetries(rt node) *model.Retry {
	n, ok := rt.get("attempts").count()
	if !ok {
		n = istioDefaultRetries
	}
	r := &model.Retry{Attempts: n + 1, PerTryTimeout: rt.get("perTryTimeout").duration()}
	if n > 0 {
		r.Backoff, r.Jitter, r.BaseDelay, r.MaxDelay = "exponential", "full", envoyRetryBaseDelay, envoyRetryMaxDelay
	}
	for _, c := range strings.Split(rt.get("retryOn").str(), ",") {
		if c = strings.TrimSpace(c); c != "" {
			r.RetryOn = append(r.RetryOn, c)
		}
	}
	return r
}

func describeFault(f node) string {
	var parts []string
	pct := func(n node) string {
		if v, ok := n.get("percentage").get("value").number(); ok {
			return fmt.Sprintf(" for %g%% of requests", v)
		}
		if v, ok := n.get("percent").number(); ok {
			return fmt.Sprintf(" for %g%% of requests", v)
		}
		return ""
	}
	if d := f.get("delay"); d.present() {
		delay := d.get("fixedDelay").str()
		if delay == "" {
			delay = "a delay"
		}
		parts = append(parts, "delay "+delay+pct(d))
	}
	if a := f.get("abort"); a.present() {
		what := "abort"
		if s, ok := a.get("httpStatus").integer(); ok {
			what = fmt.Sprintf("abort with HTTP %d", s)
		} else if g := a.get("grpcStatus").str(); g != "" {
			what = "abort with gRPC " + g
		}
		parts = append(parts, what+pct(a))
	}
	if len(parts) == 0 {
		return "a fault"
	}
	return strings.Join(parts, ", ")
}

// peerAuth is one PeerAuthentication: the workloads it covers and its mTLS mode.
type peerAuth struct {
	ns     string
	sel    selector
	scoped bool // has a workload selector
	mode   string
}

// applyPeerAuthentication marks the edges into workloads whose effective PeerAuthentication mode
// is STRICT as mutual TLS. As in Istio, a workload-selector policy overrides its namespace's, which
// overrides the mesh-wide one in the root namespace; UNSET inherits.
func (im *importer) applyPeerAuthentication(objs []*object) {
	var pas []peerAuth
	for _, o := range objs {
		spec := o.spec()
		pa := peerAuth{ns: o.namespace, mode: strings.ToUpper(spec.get("mtls").get("mode").str())}
		if s := spec.get("selector"); s.present() {
			pa.sel, pa.scoped = readSelector(s), true
		}
		if pa.mode == "UNSET" {
			pa.mode = ""
		}
		pas = append(pas, pa)
	}
	if len(pas) == 0 {
		return
	}
	for _, wl := range im.workloads {
		mode := ""
		for level := 0; level < peerAuthenticationDepth && mode == ""; level++ {
			for _, pa := range pas {
				if pa.mode == "" {
					continue
				}
				var applies bool
				switch level {
				case 0:
					applies = pa.scoped && pa.ns == wl.ns && !pa.sel.empty() && pa.sel.matches(wl.podLabels)
				case 1:
					applies = !pa.scoped && pa.ns == wl.ns
				case 2:
					applies = !pa.scoped && pa.ns == istioRootNamespace
				}
				if applies {
					mode = pa.mode
					break
				}
			}
		}
		if mode == "STRICT" {
			im.edgesInto([]string{wl.name}, func(e *model.Edge) { setTLS(e, true, "mtls") })
		}
	}
}
