package kube

import (
	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/catalog"
)

// workloadKinds are the kinds that run pods. Objects owned by one of them (the ReplicaSets and Pods
// of a cluster dump) are skipped: their owner already stands for them.
var workloadKinds = map[string]bool{
	"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true, "Rollout": true,
	"Job": true, "CronJob": true, "Pod": true, "ReplicationController": true,
}

// workload is a Deployment, StatefulSet, DaemonSet, ReplicaSet, Rollout or bare Pod, and the
// component made from it.
type workload struct {
	obj       *object
	name      string // component name
	ns        string
	kind      string
	podLabels map[string]string
	pod       node // the pod spec
	w         *model.Workload
	ck        model.ComponentKind
	replicas  int
}

// meshContainers are the proxies a service mesh injects. They talk to the mesh's control plane
// (istiod, linkerd-destination), not to the application's dependencies, so a manifest dumped from a
// cluster with sidecars injected reads like the one its authors wrote.
var meshContainers = map[string]bool{"istio-proxy": true, "istio-init": true, "istio-validation": true, "linkerd-proxy": true, "linkerd-init": true}

// appContainers drops injected mesh containers, unless nothing else is left.
func appContainers(cs []node) []node {
	out := make([]node, 0, len(cs))
	for _, c := range cs {
		if !meshContainers[c.get("name").str()] {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cs
	}
	return out
}

// readWorkload adds the component a workload object stands for.
func (im *importer) readWorkload(o *object) {
	spec := o.spec()
	var pod node
	var labels map[string]string
	if o.kind == "Pod" {
		pod, labels = spec, o.labels
	} else {
		tmpl := spec.get("template")
		pod = tmpl.get("spec")
		labels = tmpl.get("metadata").get("labels").strMap()
		if !pod.present() {
			if o.kind == "Rollout" && spec.get("workloadRef").present() {
				im.warnf(o.src, "Rollout %s takes its pod template from workloadRef; the referenced workload is imported instead", o.name)
				im.skip(o)
				return
			}
			spec.get("template").fail("%s has no pod template (spec.template.spec)", o.kind)
			return
		}
	}
	if o.name == "" {
		o.root.get("metadata").fail("metadata.name is missing")
		return
	}
	containers := appContainers(pod.get("containers").list())
	if len(containers) == 0 {
		if pod.get("containers").present() || pod.isMap() {
			pod.get("containers").fail("%s has no containers", o.kind)
		}
		return
	}
	replicas := 1
	switch o.kind {
	case "Pod":
	case "DaemonSet":
		im.warnf(o.src, "DaemonSet %s runs one pod per node; modelled with 1 replica", o.name)
	default:
		if n, ok := spec.get("replicas").count(); ok {
			replicas = n
			if n == 0 {
				im.warnf(spec.get("replicas").src(), "%s %s has replicas: 0 (scaled to zero); modelled with 1", o.kind, o.name)
				replicas = 1
			}
		}
	}

	first := containers[0]
	w := &model.Workload{Platform: "kubernetes", Kind: o.kind, Namespace: o.namespace, Image: first.get("image").str()}
	res := first.get("resources")
	r := model.Resources{
		CPURequest: res.get("requests").get("cpu").str(), MemoryRequest: res.get("requests").get("memory").str(),
		CPULimit: res.get("limits").get("cpu").str(), MemoryLimit: res.get("limits").get("memory").str(),
	}
	if r != (model.Resources{}) {
		w.Resources = &r
	}
	w.AntiAffinity = pod.get("affinity").get("podAntiAffinity").present()
	w.TopologySpread = len(pod.get("topologySpreadConstraints").list()) > 0

	var probes model.Probes
	for _, c := range containers {
		probes.Liveness = probes.Liveness || c.get("livenessProbe").present()
		probes.Readiness = probes.Readiness || c.get("readinessProbe").present()
		probes.Startup = probes.Startup || c.get("startupProbe").present()
	}
	for _, c := range pod.get("initContainers").list() {
		// Native sidecars (restartPolicy: Always) may carry probes too.
		probes.Startup = probes.Startup || c.get("startupProbe").present()
	}

	wl := &workload{obj: o, ns: o.namespace, kind: o.kind, podLabels: labels, pod: pod, w: w, replicas: replicas}
	wl.name = im.componentName(o)
	src := o.src
	if _, taken := im.b.Kind(wl.name); taken {
		// The builder reports the duplicate and keeps the first.
		im.b.AddComponent(wl.name, w.Image, replicas, w, src)
		return
	}
	_, known := catalog.Recognize(w.Image)
	if e, why := engineHint(containers[0]); !known && why != "" {
		im.warnf(src, "%s: image %s is not in the recognition table; typed as a %s %s from %s", wl.name, w.Image, e.Engine, e.Kind, why)
		wl.ck = e.Kind
		if e.Kind == model.KindDatastore {
			im.b.AddDatastore(model.Datastore{Name: wl.name, Kind: e.Engine, Replicas: replicas, Workload: w, Source: src})
		} else {
			im.b.AddBroker(model.Broker{Name: wl.name, Kind: e.Engine, Replicas: replicas, Workload: w, Source: src})
		}
	} else {
		wl.ck = im.b.AddComponent(wl.name, w.Image, replicas, w, src)
	}
	if wl.ck == model.KindService {
		if probes != (model.Probes{}) {
			p := probes
			im.b.Service(wl.name).Probes = &p
		}
	}
	im.addWorkload(wl)
}

// componentName picks the component name for a workload: its own name, or name.namespace when
// another namespace already used the name.
func (im *importer) componentName(o *object) string {
	name := o.name
	if ns, used := im.compNS[name]; used && ns != o.namespace {
		alt := name + "." + o.namespace
		im.warnf(o.src, "%s %s in namespace %s has the same name as a workload in namespace %s; named %s", o.kind, o.name, o.namespace, ns, alt)
		name = alt
	}
	if _, used := im.compNS[name]; !used {
		im.compNS[name] = o.namespace
	}
	return name
}

func (im *importer) addWorkload(wl *workload) {
	im.workloads = append(im.workloads, wl)
	im.workloadByKey[wl.kind+"/"+wl.ns+"/"+wl.obj.name] = wl
	im.namespaces[wl.ns] = true
	idx := im.podIndex[wl.ns]
	if idx == nil {
		idx = map[string][]*workload{}
		im.podIndex[wl.ns] = idx
	}
	if len(wl.podLabels) == 0 {
		idx[""] = append(idx[""], wl)
	}
	for k, v := range wl.podLabels {
		idx[k+"="+v] = append(idx[k+"="+v], wl)
	}
}

// selectWorkloads returns the workloads in ns whose pod labels match a label selector, in input
// order (index buckets are filled in input order).
func (im *importer) selectWorkloads(ns string, sel selector) []*workload {
	if sel.empty() {
		return nil
	}
	idx := im.podIndex[ns]
	var candidates []*workload
	if k, v, ok := sel.anyLabel(); ok {
		candidates = idx[k+"="+v]
	} else {
		for _, wl := range im.workloads {
			if wl.ns == ns {
				candidates = append(candidates, wl)
			}
		}
	}
	var out []*workload
	seen := map[*workload]bool{}
	for _, wl := range candidates {
		if !seen[wl] && sel.matches(wl.podLabels) {
			seen[wl] = true
			out = append(out, wl)
		}
	}
	return out
}

// selector is a Kubernetes label selector: matchLabels and matchExpressions (or a Service's plain
// map, which is matchLabels alone).
type selector struct {
	labels map[string]string
	exprs  []labelExpr
}

type labelExpr struct {
	key, op string
	values  []string
}

func (s selector) empty() bool { return len(s.labels) == 0 && len(s.exprs) == 0 }

func (s selector) anyLabel() (string, string, bool) {
	best := ""
	for k := range s.labels {
		if best == "" || k < best {
			best = k
		}
	}
	if best == "" {
		return "", "", false
	}
	return best, s.labels[best], true
}

func (s selector) matches(labels map[string]string) bool {
	for k, v := range s.labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.exprs {
		v, has := labels[e.key]
		in := has && containsString(e.values, v)
		switch e.op {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		}
	}
	return true
}

// readSelector reads a metav1.LabelSelector.
func readSelector(v node) selector {
	s := selector{labels: v.get("matchLabels").strMap()}
	for _, e := range v.get("matchExpressions").list() {
		op := e.get("operator").str()
		switch op {
		case "In", "NotIn", "Exists", "DoesNotExist":
		default:
			e.get("operator").fail("unknown selector operator %q; expected In, NotIn, Exists or DoesNotExist", op)
			continue
		}
		s.exprs = append(s.exprs, labelExpr{key: e.get("key").str(), op: op, values: e.get("values").strings()})
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// engineHint recognizes a datastore or broker whose image is not in the catalog from the first
// container's variables and port names (see catalog.RecognizeHints).
func engineHint(c node) (catalog.Entry, string) {
	var envs, ports []string
	for _, e := range c.get("env").list() {
		envs = append(envs, e.get("name").str())
	}
	for _, p := range c.get("ports").list() {
		ports = append(ports, p.get("name").str())
	}
	return catalog.RecognizeHints(envs, ports)
}

// readHPA sets the autoscaling range on the workload a HorizontalPodAutoscaler targets.
func (im *importer) readHPA(o *object) {
	spec := o.spec()
	ref := spec.get("scaleTargetRef")
	kind, name := ref.get("kind").str(), ref.get("name").str()
	minR, hasMin := spec.get("minReplicas").count()
	maxR, _ := spec.get("maxReplicas").count()
	if !hasMin {
		minR = 1
	}
	wl := im.workloadByKey[kind+"/"+o.namespace+"/"+name]
	if wl == nil {
		im.warnf(o.src, "HorizontalPodAutoscaler %s targets %s %s, which is not in the input", o.name, kind, name)
		return
	}
	wl.w.Autoscale = &model.Autoscale{Min: minR, Max: maxR}
	if minR > wl.replicas {
		wl.replicas = minR
		im.setReplicas(wl, minR)
	}
}

func (im *importer) setReplicas(wl *workload, n int) {
	switch wl.ck {
	case model.KindService:
		if s := im.b.Service(wl.name); s != nil {
			s.Replicas = n
		}
	case model.KindDatastore:
		if d := im.b.Datastore(wl.name); d != nil {
			d.Replicas = n
		}
	case model.KindBroker:
		if b := im.b.Broker(wl.name); b != nil {
			b.Replicas = n
		}
	}
}

// readPDB sets the disruption budget on the workloads a PodDisruptionBudget selects.
func (im *importer) readPDB(o *object) {
	spec := o.spec()
	sel := readSelector(spec.get("selector"))
	budget := model.DisruptionBudget{
		MinAvailable:   spec.get("minAvailable").intOrString(),
		MaxUnavailable: spec.get("maxUnavailable").intOrString(),
		Name:           o.name,
	}
	targets := im.selectWorkloads(o.namespace, sel)
	if len(targets) == 0 {
		im.warnf(o.src, "PodDisruptionBudget %s selects no workload in the input", o.name)
		return
	}
	for _, wl := range targets {
		b := budget
		wl.w.DisruptionBudget = &b
	}
}
