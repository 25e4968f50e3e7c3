package kube

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/model"
)

const shopDir = "testdata/shop"

// fileLine returns the 1-based line of the first line in file that contains substr.
func fileLine(t *testing.T, file, substr string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line containing %q", file, substr)
	return 0
}

func importShop(t *testing.T) (*model.System, []Skipped) {
	t.Helper()
	sys, skipped, err := Import(context.Background(), []string{shopDir}, Options{})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if ps := model.Validate(sys); len(ps) > 0 {
		t.Fatalf("imported system does not validate:\n%v", ps)
	}
	return sys, skipped
}

func findEdge(sys *model.System, from, to string) *model.Edge {
	for i := range sys.Edges {
		if sys.Edges[i].From == from && sys.Edges[i].To == to {
			return &sys.Edges[i]
		}
	}
	return nil
}

func componentKinds(sys *model.System) map[string]string {
	out := map[string]string{}
	for _, c := range sys.Components() {
		out[c.Name] = string(c.Kind)
	}
	return out
}

func TestImportShopComponents(t *testing.T) {
	sys, _ := importShop(t)
	if sys.Metadata.Name != "shop" {
		t.Errorf("name = %q, want shop (the first path's base name: the input names several namespaces)", sys.Metadata.Name)
	}
	type comp struct {
		kind, engine, workloadKind, namespace string
		replicas                              int
	}
	want := map[string]comp{
		"web":       {"service", "", "Deployment", "shop", 3},
		"orders":    {"service", "", "Deployment", "shop", 3}, // 2 written, HPA minReplicas 3
		"payments":  {"service", "", "Deployment", "shop", 2},
		"notifier":  {"service", "", "Deployment", "shop", 1}, // from a List
		"ledger":    {"service", "", "Deployment", "ops", 2},
		"log-agent": {"service", "", "DaemonSet", "ops", 1},
		"postgres":  {"datastore", "postgres", "StatefulSet", "shop", 2},
		"redis":     {"datastore", "redis", "Deployment", "shop", 1},
		"redis.ops": {"datastore", "redis", "Deployment", "ops", 1}, // same name in a second namespace
		"kafka":     {"broker", "kafka", "StatefulSet", "shop", 3},
	}
	got := map[string]comp{}
	for _, s := range sys.Services {
		got[s.Name] = comp{"service", "", s.Workload.Kind, s.Workload.Namespace, s.Replicas}
	}
	for _, d := range sys.Datastores {
		got[d.Name] = comp{"datastore", d.Kind, d.Workload.Kind, d.Workload.Namespace, d.Replicas}
	}
	for _, b := range sys.Brokers {
		got[b.Name] = comp{"broker", b.Kind, b.Workload.Kind, b.Workload.Namespace, b.Replicas}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("components:\n got %v\nwant %v", got, want)
	}
	for _, s := range sys.Components() {
		if s.Kind != model.KindExternal && s.Source.File == "" {
			t.Errorf("%s has no source", s.Name)
		}
	}

	web := sys.Service("web")
	wantRes := &model.Resources{CPURequest: "250m", MemoryRequest: "128Mi", MemoryLimit: "256Mi"}
	if w := web.Workload; !w.AntiAffinity || !w.TopologySpread || !reflect.DeepEqual(w.Resources, wantRes) || w.Platform != "kubernetes" || w.Image != "ghcr.io/example/shop-web:1.4.2" {
		t.Errorf("web workload = %+v (resources %+v)", w, w.Resources)
	}
	if web.Probes == nil || !web.Probes.Liveness || !web.Probes.Readiness || web.Probes.Startup {
		t.Errorf("web probes = %+v, want liveness and readiness", web.Probes)
	}
	if want := (model.Source{File: filepath.Join(shopDir, "web.yaml"), Line: 1}); !reflect.DeepEqual(web.Source, want) {
		t.Errorf("web source = %v, want %v", web.Source, want)
	}
	orders := sys.Service("orders")
	if a := orders.Workload.Autoscale; a == nil || a.Min != 3 || a.Max != 10 {
		t.Errorf("orders autoscale = %+v, want 3..10", a)
	}
	if b := orders.Workload.DisruptionBudget; b == nil || b.MinAvailable != "2" || b.Name != "orders-pdb" || b.MaxUnavailable != "" {
		t.Errorf("orders disruption budget = %+v", b)
	}
	if orders.Probes == nil || !orders.Probes.Startup {
		t.Errorf("orders probes = %+v, want startup", orders.Probes)
	}
	if !reflect.DeepEqual(orders.Datastores, []string{"postgres", "redis"}) {
		t.Errorf("orders datastores = %v", orders.Datastores)
	}
	if web.Workload.Autoscale != nil || web.Workload.DisruptionBudget != nil {
		t.Errorf("web got another workload's HPA or PDB: %+v", web.Workload)
	}
}

func TestImportShopEdges(t *testing.T) {
	sys, _ := importShop(t)
	type edge struct {
		from, to, protocol, mode string
		tls                      string // "", "true", "false"
		auth                     string
	}
	want := []edge{
		{"ledger", "redis.ops", "redis", "sync", "", ""},
		{"notifier", "kafka", "kafka", "async", "", ""},
		{"orders", "kafka", "kafka", "async", "", ""},              // StatefulSet pod DNS through the headless Service
		{"orders", "postgres", "sql", "sync", "true", ""},          // sslmode=require; port named tcp-postgres yields to the engine
		{"orders", "redis", "redis", "sync", "", ""},               // bare host in REDIS_HOST from envFrom
		{"payments", "api.stripe.com", "http", "sync", "true", ""}, // ServiceEntry host
		{"payments", "fraud", "", "sync", "", ""},                  // ExternalName Service
		{"payments", "ledger", "grpc", "sync", "", ""},             // other namespace, by FQDN, via $(VAR) in args and env
		{"web", "orders", "grpc", "sync", "true", "mtls"},          // port named grpc-api; DestinationRule ISTIO_MUTUAL
		{"web", "payments", "http", "sync", "true", "mtls"},        // PeerAuthentication STRICT on payments
	}
	var got []edge
	for _, e := range sys.Edges {
		tls := ""
		if e.TLS != nil {
			tls = map[bool]string{true: "true", false: "false"}[*e.TLS]
		}
		got = append(got, edge{e.From, e.To, e.Protocol, e.Mode, tls, e.Auth})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("edges:\n got %v\nwant %v", got, want)
	}

	wo := findEdge(sys, "web", "orders")
	wantPolicy := &model.Policy{
		Timeout: model.Duration(2 * time.Second),
		Retry: &model.Retry{Attempts: 3, Backoff: "exponential", Jitter: "full", BaseDelay: model.Duration(25 * time.Millisecond),
			MaxDelay: model.Duration(250 * time.Millisecond), PerTryTimeout: model.Duration(500 * time.Millisecond), RetryOn: []string{"5xx", "reset"}},
		CircuitBreaker: &model.CircuitBreaker{ConsecutiveFailures: 3, Window: model.Duration(5 * time.Second), OpenDuration: model.Duration(time.Minute)},
		Bulkhead:       &model.Bulkhead{MaxConcurrent: 50, MaxQueue: 10},
	}
	if !reflect.DeepEqual(wo.Policy, wantPolicy) {
		t.Errorf("web→orders policy = %+v, want %+v", wo.Policy, wantPolicy)
	}
	if p := findEdge(sys, "web", "payments").Policy; p != nil {
		t.Errorf("web→payments has a policy %+v; the payments VirtualService only injects faults", p)
	}
	if a := findEdge(sys, "orders", "postgres").Address; strings.Contains(a, "hunter2") || !strings.Contains(a, "postgres.shop.svc.cluster.local:5432") {
		t.Errorf("orders→postgres address = %q, want it without credentials", a)
	}

	sources := []struct {
		from, to, file, line string
	}{
		{"web", "orders", "web.yaml", "- name: ORDERS_ADDR"},           // configMapKeyRef: the env entry
		{"web", "payments", "web.yaml", "- name: PAYMENTS_URL"},        // literal env
		{"orders", "postgres", "configmap.yaml", "DATABASE_URL:"},      // envFrom: the ConfigMap key
		{"notifier", "kafka", "list.yaml", "command:"},                 // command line inside a List
		{"payments", "ledger", "payments.yaml", "- name: LEDGER_HOST"}, // first reference wins
	}
	for _, s := range sources {
		file := filepath.Join(shopDir, s.file)
		want := model.Source{File: file, Line: fileLine(t, file, s.line)}
		if e := findEdge(sys, s.from, s.to); e == nil || !reflect.DeepEqual(e.Source, want) {
			t.Errorf("%s→%s source = %v, want %v", s.from, s.to, e.Source, want)
		}
	}
}

func TestImportShopExternalsEntrypointsSecrets(t *testing.T) {
	sys, skipped := importShop(t)
	var externals []string
	for _, e := range sys.Externals {
		externals = append(externals, e.Name+"="+e.Host)
	}
	if want := []string{"api.stripe.com=api.stripe.com", "fraud=fraud-check.example.com"}; !reflect.DeepEqual(externals, want) {
		t.Errorf("externals = %v, want %v", externals, want)
	}

	ingress := filepath.Join(shopDir, "ingress.yaml")
	wantEntries := []model.Entrypoint{
		{Name: "shop-shop.example.com", Service: "web", Path: "/", Source: model.Source{File: ingress, Line: fileLine(t, ingress, "- path: /")}},
		{Name: "shop-shop.example.com/api/orders", Service: "orders", Path: "/api/orders", Source: model.Source{File: ingress, Line: fileLine(t, ingress, "- path: /api/orders")}},
	}
	if !reflect.DeepEqual(sys.Entrypoints, wantEntries) {
		t.Errorf("entrypoints:\n got %+v\nwant %+v", sys.Entrypoints, wantEntries)
	}

	secrets := map[string][]string{}
	for _, s := range sys.Services {
		for _, sec := range s.Secrets {
			secrets[s.Name] = append(secrets[s.Name], sec.Name+":"+sec.From)
			if sec.Source.File == "" || sec.Source.Line == 0 {
				t.Errorf("%s secret %s has no source", s.Name, sec.Name)
			}
		}
	}
	wantSecrets := map[string][]string{
		"web":    {"API_TOKEN:literal", "SESSION_SECRET:secretRef"},
		"orders": {"DB_PASSWORD:literal", "orders-db:secretRef", "orders-tls:file"},
	}
	if !reflect.DeepEqual(secrets, wantSecrets) {
		t.Errorf("secrets = %v, want %v", secrets, wantSecrets)
	}

	var gotSkipped []string
	for _, s := range skipped {
		gotSkipped = append(gotSkipped, s.Kind+"/"+s.Name)
		if s.Source.File == "" || s.Source.Line == 0 {
			t.Errorf("skipped %s/%s has no source", s.Kind, s.Name)
		}
	}
	wantSkipped := []string{"CustomResourceDefinition/widgets.example.com", "Widget/gizmo", "ServiceAccount/web", "NetworkPolicy/deny-all", "Namespace/shop", "Namespace/ops"}
	if !reflect.DeepEqual(gotSkipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", gotSkipped, wantSkipped)
	}
	list := filepath.Join(shopDir, "list.yaml")
	if want := (model.Source{File: list, Line: fileLine(t, list, "- apiVersion: networking.k8s.io/v1")}); !reflect.DeepEqual(skipped[3].Source, want) {
		t.Errorf("List item source = %v, want %v", skipped[3].Source, want)
	}

	var warnings []string
	for _, w := range sys.Warnings {
		warnings = append(warnings, w.String())
	}
	all := strings.Join(warnings, "\n")
	for _, want := range []string{
		"ops.yaml:32: Deployment redis in namespace ops has the same name as a workload in namespace shop; named redis.ops",
		"ops.yaml:59: DaemonSet log-agent runs one pod per node",
		"istio.yaml:" + strconv.Itoa(fileLine(t, filepath.Join(shopDir, "istio.yaml"), "delay:")) + ": VirtualService payments-chaos injects faults into calls to payments: delay 3s for 10% of requests",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q; got:\n%s", want, all)
		}
	}
	if strings.Contains(all, "hunter2") || strings.Contains(all, "tok_live") {
		t.Errorf("a warning leaks a secret value:\n%s", all)
	}
	if len(warnings) != 3 {
		t.Errorf("got %d warnings, want 3:\n%s", len(warnings), all)
	}
}

// writeFiles writes manifests into a temporary directory and returns it.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustImport(t *testing.T, files map[string]string, opts Options) (*model.System, []Skipped) {
	t.Helper()
	dir := writeFiles(t, files)
	sys, skipped, err := Import(context.Background(), []string{dir}, opts)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if ps := model.Validate(sys); len(ps) > 0 {
		t.Fatalf("imported system does not validate:\n%v", ps)
	}
	return sys, skipped
}

func deployment(name, ns string, labels, env string) string {
	meta := "  name: " + name + "\n"
	if ns != "" {
		meta += "  namespace: " + ns + "\n"
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata:
` + meta + `spec:
  selector:
    matchLabels: {` + labels + `}
  template:
    metadata:
      labels: {` + labels + `}
    spec:
      containers:
      - name: main
        image: example/` + name + `:1
        env:
` + env + "---\n"
}

func service(name, ns, selector, ports string) string {
	s := "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n"
	if ns != "" {
		s += "  namespace: " + ns + "\n"
	}
	s += "spec:\n"
	if selector != "" {
		s += "  selector: {" + selector + "}\n"
	}
	if ports != "" {
		s += "  ports:\n" + ports
	}
	return s + "---\n"
}

func TestServiceSelectingSeveralWorkloads(t *testing.T) {
	files := map[string]string{"app.yaml": deployment("productpage", "", "app: productpage", "        - {name: REVIEWS_URL, value: \"http://reviews:9080\"}\n") +
		deployment("reviews-v1", "", "app: reviews, version: v1", "        - {name: X, value: \"1\"}\n") +
		deployment("reviews-v2", "", "app: reviews, version: v2", "        - {name: X, value: \"1\"}\n") +
		service("reviews", "", "app: reviews", "  - {name: http, port: 9080}\n") +
		`apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {}
`,
	}
	sys, _ := mustImport(t, files, Options{Name: "bookinfo"})
	if sys.Metadata.Name != "bookinfo" {
		t.Errorf("name = %q", sys.Metadata.Name)
	}
	for _, to := range []string{"reviews-v1", "reviews-v2"} {
		e := findEdge(sys, "productpage", to)
		if e == nil {
			t.Fatalf("no edge productpage→%s; edges %+v", to, sys.Edges)
		}
		if e.CallsPerRequest != 0.5 || e.Protocol != "http" {
			t.Errorf("productpage→%s = %+v, want half the calls over http", to, e)
		}
		// outlierDetection with nothing set takes Istio's defaults.
		want := &model.CircuitBreaker{ConsecutiveFailures: 5, Window: model.Duration(10 * time.Second), OpenDuration: model.Duration(30 * time.Second)}
		if e.Policy == nil || !reflect.DeepEqual(e.Policy.CircuitBreaker, want) {
			t.Errorf("productpage→%s policy = %+v, want Istio's default outlier detection", to, e.Policy)
		}
	}
	if s := sys.Service("productpage"); s.Workload.Namespace != "default" {
		t.Errorf("namespace = %q, want default", s.Workload.Namespace)
	}
}

func TestPeerAuthenticationPrecedence(t *testing.T) {
	pa := func(name, ns, selector, mode string) string {
		s := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n"
		if selector != "" {
			s += "  selector: {matchLabels: {" + selector + "}}\n"
		}
		return s + "  mtls: {mode: " + mode + "}\n---\n"
	}
	env := "        - {name: A_ADDR, value: \"a:80\"}\n        - {name: B_ADDR, value: \"b:80\"}\n        - {name: C_ADDR, value: \"c.legacy:80\"}\n"
	files := map[string]string{
		"apps.yaml": deployment("caller", "prod", "app: caller", env) +
			deployment("a", "prod", "app: a", "        - {name: X, value: \"1\"}\n") + service("a", "prod", "app: a", "") +
			deployment("b", "prod", "app: b", "        - {name: X, value: \"1\"}\n") + service("b", "prod", "app: b", "") +
			deployment("c", "legacy", "app: c", "        - {name: X, value: \"1\"}\n") + service("c", "legacy", "app: c", ""),
		"mesh.yaml": pa("mesh", "istio-system", "", "STRICT") + pa("b-permissive", "prod", "app: b", "PERMISSIVE") + pa("legacy", "legacy", "", "DISABLE"),
	}
	sys, _ := mustImport(t, files, Options{})
	check := func(to string, mtls bool) {
		t.Helper()
		e := findEdge(sys, "caller", to)
		if e == nil {
			t.Fatalf("no edge caller→%s in %+v", to, sys.Edges)
		}
		got := e.TLS != nil && *e.TLS && e.Auth == "mtls"
		if got != mtls {
			t.Errorf("caller→%s mtls = %v (tls %v auth %q), want %v", to, got, e.TLS, e.Auth, mtls)
		}
	}
	check("a", true)  // mesh-wide STRICT
	check("b", false) // workload PERMISSIVE overrides
	check("c", false) // namespace DISABLE overrides
}

func TestEntrypointsFromGateways(t *testing.T) {
	base := deployment("front", "", "app: front", "        - {name: API_ADDR, value: \"api:8080\"}\n") + service("front", "", "app: front", "  - {name: http, port: 80}\n") +
		deployment("api", "", "app: api", "        - {name: X, value: \"1\"}\n") + service("api", "", "app: api", "  - {name: http, port: 8080}\n") +
		"apiVersion: v1\nkind: Service\nmetadata: {name: front-lb}\nspec:\n  type: LoadBalancer\n  selector: {app: front}\n---\n"
	t.Run("load balancer when nothing routes", func(t *testing.T) {
		sys, _ := mustImport(t, map[string]string{"a.yaml": base}, Options{})
		if len(sys.Entrypoints) != 1 || sys.Entrypoints[0].Name != "front-lb" || sys.Entrypoints[0].Service != "front" {
			t.Errorf("entrypoints = %+v, want front-lb → front", sys.Entrypoints)
		}
	})
	t.Run("gateway api route", func(t *testing.T) {
		route := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 8080}]
`
		sys, _ := mustImport(t, map[string]string{"a.yaml": base + route}, Options{})
		if len(sys.Entrypoints) != 1 || sys.Entrypoints[0].Name != "web-shop.example.com/api" || sys.Entrypoints[0].Service != "api" || sys.Entrypoints[0].Path != "/api" {
			t.Errorf("entrypoints = %+v", sys.Entrypoints)
		}
	})
	t.Run("istio gateway virtual service", func(t *testing.T) {
		vs := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /shop}}]
    timeout: 9s
    route: [{destination: {host: front.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api}}]
`
		sys, _ := mustImport(t, map[string]string{"a.yaml": base + vs}, Options{})
		var got []string
		for _, e := range sys.Entrypoints {
			got = append(got, e.Name+"→"+e.Service)
		}
		if want := []string{"edge-api→api", "edge-shop→front"}; !reflect.DeepEqual(got, want) {
			t.Errorf("entrypoints = %v, want %v", got, want)
		}
		if p := findEdge(sys, "front", "api").Policy; p != nil {
			t.Errorf("a gateway-only VirtualService set a mesh policy: %+v", p)
		}
	})
	t.Run("warning when nothing is exposed", func(t *testing.T) {
		body := deployment("solo", "", "app: solo", "        - {name: X, value: \"1\"}\n")
		sys, _ := mustImport(t, map[string]string{"a.yaml": body}, Options{})
		if len(sys.Entrypoints) != 0 || len(sys.Warnings) != 1 || !strings.Contains(sys.Warnings[0].Message, "no entrypoints") {
			t.Errorf("entrypoints %+v warnings %+v", sys.Entrypoints, sys.Warnings)
		}
	})
}

func TestUnresolvedHostsAndCluster(t *testing.T) {
	env := `        - {name: SEARCH_URL, value: "http://search:9200"}
        - {name: LEGACY_DB, value: "10.0.0.12:5432"}
        - {name: PEER_URL, value: "http://peer:80"}
        - {name: SELF_URL, value: "http://app:80"}
        - {name: GONE_ADDR, value: "gone:80"}
`
	files := map[string]string{
		"a.yaml": deployment("app", "team", "app: app", env) + service("app", "team", "app: app", "") +
			deployment("peer", "other", "app: peer", "        - {name: X, value: \"1\"}\n") + service("peer", "other", "app: peer", "") +
			service("gone", "team", "app: gone", ""),
	}
	sys, _ := mustImport(t, files, Options{})
	kinds := componentKinds(sys)
	for name, kind := range map[string]string{"search": "external", "10.0.0.12": "external", "gone": "external", "peer": "service"} {
		if kinds[name] != kind {
			t.Errorf("%s is %q, want %s", name, kinds[name], kind)
		}
		if findEdge(sys, "app", name) == nil {
			t.Errorf("no edge app→%s", name)
		}
	}
	if findEdge(sys, "app", "app") != nil {
		t.Error("self edge")
	}
	var msgs []string
	for _, w := range sys.Warnings {
		msgs = append(msgs, w.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"host search matches no workload; added as external",
		"host 10.0.0.12 matches no workload; added as external",
		"host peer resolved to Service peer in namespace other",
		"Service gone selects no workload in the input",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func TestSingleNamespaceNamesTheSystem(t *testing.T) {
	sys, _ := mustImport(t, map[string]string{"x.yaml": deployment("a", "payments", "app: a", "        - {name: X, value: \"1\"}\n")}, Options{})
	if sys.Metadata.Name != "payments" {
		t.Errorf("name = %q, want payments", sys.Metadata.Name)
	}
	dir := writeFiles(t, map[string]string{"online-boutique.json": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a"}]}}}}`})
	sys, _, err := Import(context.Background(), []string{filepath.Join(dir, "online-boutique.json")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sys.Metadata.Name != "online-boutique" || len(sys.Services) != 1 {
		t.Errorf("name = %q services %d, want online-boutique and 1 (JSON input)", sys.Metadata.Name, len(sys.Services))
	}
}

func TestOwnedObjectsAndDuplicates(t *testing.T) {
	rs := `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: a-5d8f
  ownerReferences: [{kind: Deployment, name: a}]
spec:
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: a, image: a}]}
---
`
	files := map[string]string{"x.yaml": deployment("a", "", "app: a", "        - {name: X, value: \"1\"}\n") + rs +
		service("a", "", "app: a", "") + service("a", "", "app: a", "")}
	sys, skipped := mustImport(t, files, Options{})
	if len(sys.Services) != 1 || len(skipped) != 1 || skipped[0].Kind != "ReplicaSet" {
		t.Errorf("services %d skipped %+v, want the owned ReplicaSet skipped", len(sys.Services), skipped)
	}
	found := false
	for _, w := range sys.Warnings {
		found = found || strings.Contains(w.Message, "Service a in namespace default is defined again")
	}
	if !found {
		t.Errorf("no duplicate warning in %+v", sys.Warnings)
	}
}

func TestProtocolHint(t *testing.T) {
	cases := map[string]string{
		"http": "http", "http2": "http", "http-web": "http", "HTTPS": "http", "kubernetes.io/h2c": "http",
		"grpc": "grpc", "grpc-web": "grpc", "grpc-api": "grpc", "tcp": "tcp", "tcp-postgres": "tcp", "tls": "tcp",
		"mongo": "tcp", "redis": "redis", "kafka": "kafka", "mysql": "sql", "amqp": "amqp", "kubernetes.io/ws": "websocket",
		"metrics": "", "web": "", "": "",
	}
	for in, want := range cases {
		if got := protocolHint(in); got != want {
			t.Errorf("protocolHint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"HOST": "db", "PORT": "5432"}
	cases := map[string]string{
		"$(HOST):$(PORT)":    "db:5432",
		"$$(HOST)":           "$(HOST)",
		"$(MISSING)":         "$(MISSING)",
		"x$":                 "x$",
		"$(HOST":             "$(HOST",
		"postgres://$(HOST)": "postgres://db",
	}
	for in, want := range cases {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
	big := map[string]string{"A": strings.Repeat("x", maxExpanded)}
	if got := expand("$(A)$(A)", big); got != "$(A)$(A)" {
		t.Errorf("expansion past the limit was not refused (len %d)", len(got))
	}
}

func TestSecretLooking(t *testing.T) {
	cases := map[string]bool{
		"DB_PASSWORD": true, "API_TOKEN": true, "STRIPE_API_KEY": true, "aws-secret-access-key": true, "GOOGLE_APPLICATION_CREDENTIALS": true,
		"DB_PASSWORD_FILE": false, "TOKEN_URL": false, "JWT_SECRET_NAME": false, "TOKEN_TTL": false, "PORT": false, "DB_HOST": false,
	}
	for name, want := range cases {
		if got := secretLooking(name); got != want {
			t.Errorf("secretLooking(%q) = %v, want %v", name, got, want)
		}
	}
	if literalSecret("DB_PASSWORD", "") || literalSecret("DB_PASSWORD", "$(FROM_SECRET)") || literalSecret("USE_TOKEN", "true") {
		t.Error("empty, reference or switch values counted as literal secrets")
	}
}

func TestLooksLikeKubernetes(t *testing.T) {
	cases := []struct {
		name string
		data string
		want bool
	}{
		{"deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n", true},
		{"second document", "# compose?\nservices: {}\n---\napiVersion: v1\nkind: Service\n", true},
		{"json list", `{"apiVersion":"v1","kind":"List","items":[]}`, true},
		{"faultline model", "apiVersion: faultline/v1\nkind: System\nmetadata: {name: x}\n", false},
		{"compose", "services:\n  web:\n    image: nginx\n", false},
		{"helm template", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels:\n    {{- include \"x\" . | nindent 4 }}\n", true},
		{"empty", "", false},
		{"binary", "apiVersion: v1\x00kind: Service", false},
		{"no kind", "apiVersion: v2\nname: chart\nversion: 1.0.0\n", false},
	}
	for _, c := range cases {
		if got := LooksLikeKubernetes([]byte(c.data)); got != c.want {
			t.Errorf("%s: LooksLikeKubernetes = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Import(ctx, []string{shopDir}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestInjectedSidecarsAndRollouts(t *testing.T) {
	body := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: api}
spec:
  replicas: 4
  strategy: {canary: {steps: [{setWeight: 20}]}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers:
      - name: istio-init
        image: docker.io/istio/proxyv2:1.22.0
        args: [istio-iptables, -p, "15001"]
      containers:
      - name: api
        image: example/api:3
        env: [{name: CACHE_URL, value: "redis://cache:6379/0"}]
      - name: istio-proxy
        image: docker.io/istio/proxyv2:1.22.0
        args: [proxy, sidecar, --discoveryAddress, istiod.istio-system.svc:15012]
        readinessProbe: {httpGet: {path: /healthz/ready, port: 15021}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api}
spec:
  scaleTargetRef: {kind: Rollout, name: api}
  minReplicas: 2
  maxReplicas: 8
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: gone}
spec:
  scaleTargetRef: {kind: Deployment, name: gone}
  maxReplicas: 3
`
	sys, _ := mustImport(t, map[string]string{"a.yaml": body}, Options{})
	api := sys.Service("api")
	if api == nil || api.Replicas != 4 || api.Workload.Kind != "Rollout" || api.Workload.Image != "example/api:3" {
		t.Fatalf("api = %+v", api)
	}
	if a := api.Workload.Autoscale; a == nil || a.Min != 2 || a.Max != 8 {
		t.Errorf("autoscale = %+v", a)
	}
	if api.Probes != nil {
		t.Errorf("the sidecar's probe was counted: %+v", api.Probes)
	}
	var names []string
	for _, c := range sys.Components() {
		names = append(names, c.Name)
	}
	if want := []string{"api", "cache"}; !reflect.DeepEqual(names, want) {
		t.Errorf("components = %v, want %v (no istiod)", names, want)
	}
	if e := findEdge(sys, "api", "cache"); e == nil || e.Protocol != "redis" {
		t.Errorf("api→cache = %+v", e)
	}
	found := false
	for _, w := range sys.Warnings {
		found = found || strings.Contains(w.Message, "HorizontalPodAutoscaler gone targets Deployment gone, which is not in the input")
	}
	if !found {
		t.Errorf("warnings = %+v", sys.Warnings)
	}
}

func TestKustomizationIsSkippedWithAWarning(t *testing.T) {
	files := map[string]string{
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml]\n",
		"app.yaml":           goodDeployment,
	}
	sys, skipped := mustImport(t, files, Options{})
	if len(skipped) != 1 || skipped[0].Kind != "Kustomization" {
		t.Errorf("skipped = %+v", skipped)
	}
	found := false
	for _, w := range sys.Warnings {
		found = found || strings.Contains(w.Message, "render the directory with `kubectl kustomize` first") && filepath.Base(w.File) == "kustomization.yaml" && w.Line == 1
	}
	if !found {
		t.Errorf("warnings = %+v", sys.Warnings)
	}
}

func TestLessCommonShapes(t *testing.T) {
	body := `apiVersion: v1
kind: Secret
metadata: {name: db}
data:
  DATABASE_URL: cG9zdGdyZXM6Ly91OnBAcGc6NTQzMi9hcHA= # postgres://u:p@pg:5432/app
stringData:
  SEARCH_URL: http://search:9200
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: default}
spec:
  template:
    metadata: {labels: {app: api, track: stable}}
    spec:
      containers:
      - name: api
        image: example/api:1
        env:
        - <<: &storage {name: STORAGE_URL, value: "https://bucket.storage.googleapis.com"}
        - name: DB
          valueFrom: {secretKeyRef: {name: db, key: DATABASE_URL}}
        envFrom:
        - secretRef: {name: db}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pg}
spec:
  template:
    metadata: {labels: {app: pg}}
    spec: {containers: [{name: pg, image: bitnami/postgresql:16}]}
---
apiVersion: v1
kind: Service
metadata: {name: pg}
spec: {selector: {app: pg}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: search}
spec:
  template:
    metadata: {labels: {app: search}}
    spec: {containers: [{name: es, image: elasticsearch:8.14.0}]}
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec: {selector: {app: search}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gcs}
spec: {hosts: ["*.storage.googleapis.com"]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all-local}
spec:
  host: "*.default.svc.cluster.local"
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 20}}
    tls: {mode: SIMPLE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: search-chaos}
spec:
  hosts: [search]
  http:
  - fault: {abort: {grpcStatus: UNAVAILABLE, percent: 5}}
    route: [{destination: {host: search}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api}
spec:
  maxUnavailable: 25%
  selector:
    matchExpressions:
    - {key: app, operator: In, values: [api, web]}
    - {key: track, operator: NotIn, values: [canary]}
    - {key: app, operator: Exists}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pg-mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: search}]
  rules: [{timeouts: {request: 750ms}, backendRefs: [{name: search, port: 9200}]}]
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: legacy}
spec:
  backend: {serviceName: api, servicePort: 80}
`
	sys, _ := mustImport(t, map[string]string{"a.yaml": body}, Options{})
	kinds := componentKinds(sys)
	if kinds["pg"] != "datastore" || kinds["search"] != "datastore" || kinds["*.storage.googleapis.com"] != "external" {
		t.Errorf("components = %v", kinds)
	}
	pg := findEdge(sys, "api", "pg")
	if pg == nil || pg.Protocol != "sql" || strings.Contains(pg.Address, "u:p") {
		t.Fatalf("api→pg (from a base64 Secret value) = %+v", pg)
	}
	if pg.TLS == nil || !*pg.TLS || pg.Policy == nil || pg.Policy.Bulkhead == nil || pg.Policy.Bulkhead.MaxConcurrent != 20 {
		t.Errorf("api→pg did not get the wildcard DestinationRule: %+v", pg)
	}
	search := findEdge(sys, "api", "search")
	if search == nil || search.Protocol != "http" || search.Policy == nil || search.Policy.Timeout != model.Duration(750*time.Millisecond) {
		t.Errorf("api→search (from stringData, GAMMA route timeout) = %+v", search)
	}
	if e := findEdge(sys, "api", "*.storage.googleapis.com"); e == nil || e.TLS == nil || !*e.TLS {
		t.Errorf("api→storage (merge key, wildcard ServiceEntry) = %+v", e)
	}
	api := sys.Service("api")
	if b := api.Workload.DisruptionBudget; b == nil || b.MaxUnavailable != "25%" {
		t.Errorf("PDB by matchExpressions = %+v", b)
	}
	var secrets []string
	for _, s := range api.Secrets {
		secrets = append(secrets, s.Name+":"+s.From)
	}
	if want := []string{"DATABASE_URL:secretRef", "SEARCH_URL:secretRef", "DB:secretRef"}; !reflect.DeepEqual(secrets, want) {
		t.Errorf("secrets = %v, want %v", secrets, want)
	}
	if len(sys.Entrypoints) != 1 || sys.Entrypoints[0].Name != "legacy" || sys.Entrypoints[0].Service != "api" {
		t.Errorf("entrypoints = %+v", sys.Entrypoints)
	}
	found := false
	for _, w := range sys.Warnings {
		found = found || strings.Contains(w.Message, "injects faults into calls to search: abort with gRPC UNAVAILABLE for 5% of requests")
	}
	if !found {
		t.Errorf("warnings = %+v", sys.Warnings)
	}
}
