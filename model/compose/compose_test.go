package compose

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
)

// shopEnv is the environment the shop fixture is imported with: TAG and JWT_SECRET are set,
// FRAUD_HOST is not (the missing variable), DB_PASSWORD is not (a bare passthrough).
var shopEnv = map[string]string{"TAG": "1.4", "JWT_SECRET": "from-the-environment"}

var shopFiles = []string{"testdata/shop/compose.yaml", "testdata/shop/compose.override.yaml"}

func importShop(t *testing.T, opts Options) *model.System {
	t.Helper()
	if opts.Env == nil {
		opts.Env = shopEnv
	}
	sys, err := Import(context.Background(), shopFiles, opts)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if ps := model.Validate(sys); len(ps) > 0 {
		t.Fatalf("imported system does not validate:\n%v", ps)
	}
	return sys
}

// node is what the tests compare about a node of the graph.
type node struct {
	kind     model.ComponentKind
	engine   string
	replicas int
}

func components(sys *model.System) map[string]node {
	out := map[string]node{}
	for _, s := range sys.Services {
		out[s.Name] = node{model.KindService, "", s.Replicas}
	}
	for _, d := range sys.Datastores {
		out[d.Name] = node{model.KindDatastore, d.Kind, d.Replicas}
	}
	for _, b := range sys.Brokers {
		out[b.Name] = node{model.KindBroker, b.Kind, b.Replicas}
	}
	for _, e := range sys.Externals {
		out[e.Name] = node{model.KindExternal, "", 1}
	}
	return out
}

func edgeSet(sys *model.System) map[string]string {
	out := map[string]string{}
	for _, e := range sys.Edges {
		out[e.From+" -> "+e.To] = e.Protocol
	}
	return out
}

func TestImportShopComponents(t *testing.T) {
	sys := importShop(t, Options{})
	if sys.Metadata.Name != "shop" {
		t.Errorf("name = %q, want shop (from the name: field)", sys.Metadata.Name)
	}
	want := map[string]node{
		"gateway":              {model.KindService, "", 1},
		"order":                {model.KindService, "", 3}, // 2 in compose.yaml, 3 in the override
		"payment":              {model.KindService, "", 1},
		"inventory":            {model.KindService, "", 2}, // scale: 2 in the override
		"inventory-db":         {model.KindDatastore, "mongo", 1},
		"postgres":             {model.KindDatastore, "postgres", 1},
		"redis":                {model.KindDatastore, "redis", 1},
		"zookeeper":            {model.KindDatastore, "zookeeper", 1},
		"kafka":                {model.KindBroker, "kafka", 1},
		"rabbitmq":             {model.KindBroker, "rabbitmq", 1},
		"payments.example.com": {model.KindExternal, "", 1},
		"kafka-2":              {model.KindExternal, "", 1},
		"erp01":                {model.KindExternal, "", 1}, // bare word in LEGACY_ERP_HOST
		"10.0.3.17":            {model.KindExternal, "", 1}, // IP literal in LEDGER_ADDR
		"jaeger":               {model.KindExternal, "", 1}, // JAEGER_AGENT_HOST from base.yaml via extends
	}
	got := components(sys)
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("missing component %q", name)
		} else if g != w {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected component %q", name)
		}
	}
	// Profiles left these out, and the hosts they answer to did not become externals either.
	for _, name := range []string{"otel-collector", "debug-shell", "broker.example.com"} {
		if _, ok := got[name]; ok {
			t.Errorf("%q should not be imported", name)
		}
	}

	order := sys.Service("order")
	if order.Workload == nil || order.Workload.Platform != "compose" || order.Workload.Kind != "service" || order.Workload.Image != "" {
		t.Errorf("order workload = %+v, want platform compose, kind service, no image (build only)", order.Workload)
	}
	wantRes := model.Resources{CPULimit: "0.5", MemoryLimit: "512M", MemoryRequest: "256M"}
	if order.Workload.Resources == nil || *order.Workload.Resources != wantRes {
		t.Errorf("order resources = %+v, want %+v", order.Workload.Resources, wantRes)
	}
	if img := sys.Service("payment").Workload.Image; img != "shop/payment:1.4" {
		t.Errorf("payment image = %q, want the interpolated shop/payment:1.4", img)
	}
	if d := sys.Datastore("postgres"); d.Workload == nil || d.Workload.Image != "postgres:16-alpine" {
		t.Errorf("postgres workload = %+v", d.Workload)
	}
}

func TestImportShopEdges(t *testing.T) {
	sys := importShop(t, Options{})
	want := map[string]string{
		"gateway -> order":                "http", // ORDER_URL, and depends_on
		"gateway -> inventory":            "",     // network alias inventory-svc
		"gateway -> payments.example.com": "http",
		"order -> postgres":               "sql",   // postgres:// DSN
		"order -> redis":                  "redis", // host:port, protocol from the target
		"order -> kafka":                  "kafka", // host:port list
		"order -> kafka-2":                "kafka", // unknown host in KAFKA_BROKERS
		"order -> payment":                "http",
		"order -> erp01":                  "",
		"order -> inventory":              "grpc", // from order.env, INVENTORY_GRPC
		"payment -> postgres":             "sql",  // JDBC
		"payment -> rabbitmq":             "amqp", // bare host in SPRING_RABBITMQ_HOST
		"payment -> 10.0.3.17":            "",
		"payment -> jaeger":               "",
		"payment -> redis":                "redis", // --cache.host=redis on the command line
		"inventory -> inventory-db":       "tcp",   // MongoDB URI
		"inventory -> redis":              "redis", // container_name shop-redis
		"kafka -> zookeeper":              "tcp",   // KAFKA_ZOOKEEPER_CONNECT and depends_on
	}
	got := edgeSet(sys)
	for k, p := range want {
		if gp, ok := got[k]; !ok {
			t.Errorf("missing edge %s", k)
		} else if gp != p {
			t.Errorf("edge %s protocol = %q, want %q", k, gp, p)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected edge %s", k)
		}
	}
	for _, e := range sys.Edges {
		if e.From == "order" && e.To == "postgres" {
			if !strings.HasPrefix(e.Address, "postgres://") || !strings.Contains(e.Address, "postgres:5432") || strings.Contains(e.Address, "s3cret") {
				t.Errorf("order -> postgres address = %q, want the DSN without its password", e.Address)
			}
		}
		if e.To == "kafka" && e.Mode != model.ModeAsync {
			t.Errorf("%s mode = %q, want async to a broker", e, e.Mode)
		}
		if e.To == "payments.example.com" && (e.TLS == nil || !*e.TLS) {
			t.Errorf("https edge should be TLS")
		}
	}
	if ds := sys.Service("order").Datastores; !slices.Equal(ds, []string{"postgres", "redis"}) {
		t.Errorf("order datastores = %v", ds)
	}
}

func TestImportShopSources(t *testing.T) {
	sys := importShop(t, Options{})
	const main = "testdata/shop/compose.yaml"
	srcs := map[string]string{}
	for _, s := range sys.Services {
		srcs[s.Name] = s.Source.String()
	}
	for _, d := range sys.Datastores {
		srcs[d.Name] = d.Source.String()
	}
	for _, b := range sys.Brokers {
		srcs[b.Name] = b.Source.String()
	}
	for _, e := range sys.Edges {
		srcs[e.From+" -> "+e.To] = e.Source.String()
	}
	want := map[string]string{
		"gateway":                   main + ":9",
		"order":                     main + ":26", // the first file that defines it, not the override
		"inventory":                 main + ":70",
		"kafka":                     main + ":94",
		"zookeeper":                 main + ":101",
		"gateway -> order":          main + ":19",                // ORDER_URL
		"order -> inventory":        "testdata/shop/order.env:3", // the env_file line
		"payment -> jaeger":         "testdata/shop/base.yaml:7", // through extends: file:
		"payment -> rabbitmq":       main + ":61",                // list-form environment
		"payment -> redis":          main + ":68",                // command
		"inventory -> inventory-db": main + ":76",                // MONGO_URI
		"kafka -> zookeeper":        main + ":97",                // env wins over depends_on
	}
	for k, w := range want {
		if srcs[k] != w {
			t.Errorf("source of %s = %q, want %q", k, srcs[k], w)
		}
	}
	// An edge only depends_on implies points at its entry.
	sys2, err := Import(context.Background(), []string{writeFile(t, "compose.yaml", `
services:
  app:
    image: app
    depends_on:
      - cache
  cache:
    image: memcached
`)}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sys2.Edges) != 1 || sys2.Edges[0].Source.Line != 5 {
		t.Errorf("depends_on edge = %+v, want line 5", sys2.Edges)
	}
}

func TestImportShopSecrets(t *testing.T) {
	sys := importShop(t, Options{})
	got := map[string][]string{}
	for _, s := range sys.Services {
		for _, sec := range s.Secrets {
			got[s.Name] = append(got[s.Name], sec.Name+"="+sec.From+"@"+sec.Source.String())
		}
	}
	want := map[string][]string{
		"order": {
			"DATABASE_URL=literal@testdata/shop/compose.yaml:30", // user:password@ in a URL
			"JWT_SECRET=env@testdata/shop/compose.yaml:34",       // ${JWT_SECRET}
			"ORDER_API_TOKEN=file@testdata/shop/order.env:4",     // from the env_file
		},
		"payment": {
			"DB_PASSWORD=env@testdata/shop/compose.yaml:63", // bare name, from the shell
			"STRIPE_API_KEY=literal@testdata/shop/compose.yaml:62",
			"payment_db_password=file@testdata/shop/compose.yaml:67", // compose secrets:
		},
	}
	for svc, w := range want {
		if !slices.Equal(got[svc], w) {
			t.Errorf("%s secrets:\n got %v\nwant %v", svc, got[svc], w)
		}
	}
	for svc := range got {
		if _, ok := want[svc]; !ok {
			t.Errorf("unexpected secrets on %s: %v", svc, got[svc])
		}
	}
	// No secret value may reach the model, in any output format.
	y, _ := yaml.Marshal(sys)
	j, _ := json.Marshal(sys)
	for _, secret := range []string{"s3cret", "sk_test_abc123", "tok_live_123", "from-the-environment", "not-a-real-secret"} {
		if strings.Contains(string(y), secret) || strings.Contains(string(j), secret) {
			t.Errorf("secret value %q leaked into the model", secret)
		}
	}
}

func TestImportShopProbesAndTracing(t *testing.T) {
	sys := importShop(t, Options{})
	for name, want := range map[string]bool{"gateway": true, "order": true, "payment": true, "inventory": false} {
		s := sys.Service(name)
		got := s.Probes != nil && s.Probes.Readiness && !s.Probes.Liveness
		if got != want {
			t.Errorf("%s probes = %+v, want readiness %v", name, s.Probes, want)
		}
	}
	tracing := func(name string) string {
		if o := sys.Service(name).Observability; o != nil {
			return o.Tracing
		}
		return ""
	}
	if got := tracing("order"); got != "otel" {
		t.Errorf("order tracing = %q, want otel (OTEL_EXPORTER_OTLP_ENDPOINT)", got)
	}
	if got := tracing("payment"); got != "jaeger" {
		t.Errorf("payment tracing = %q, want jaeger (JAEGER_AGENT_HOST)", got)
	}
	if got := tracing("gateway"); got != "" {
		t.Errorf("gateway tracing = %q, want unknown", got)
	}
}

func TestImportShopWarnings(t *testing.T) {
	sys := importShop(t, Options{})
	var got []string
	for _, w := range sys.Warnings {
		got = append(got, w.String())
	}
	sort.Strings(got)
	want := []string{
		`testdata/shop/compose.yaml:108: service "otel-collector" is not imported: its profiles (observability) are not active`,
		`testdata/shop/compose.yaml:112: service "debug-shell" is not imported: its profiles (debug) are not active`,
		`testdata/shop/compose.yaml:64:9: services.payment.environment[4]: variable FRAUD_HOST is not set; compose substitutes an empty string`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

func TestImportProfiles(t *testing.T) {
	sys := importShop(t, Options{Profiles: []string{"observability"}})
	if sys.Service("otel-collector") == nil {
		t.Fatal("otel-collector should be imported with its profile active")
	}
	if _, ok := edgeSet(sys)["order -> otel-collector"]; !ok {
		t.Error("order -> otel-collector edge missing")
	}
	if sys.Service("debug-shell") != nil {
		t.Error("debug-shell imported without its profile")
	}
	all := importShop(t, Options{Profiles: []string{"*"}})
	if all.Service("debug-shell") == nil || all.Service("otel-collector") == nil {
		t.Error(`profile "*" should enable every service`)
	}
}

func TestImportWithoutOverride(t *testing.T) {
	sys, err := Import(context.Background(), shopFiles[:1], Options{Env: shopEnv, Name: "my shop"})
	if err != nil {
		t.Fatal(err)
	}
	if sys.Metadata.Name != "my shop" {
		t.Errorf("name = %q, want the Name option", sys.Metadata.Name)
	}
	if r := sys.Service("order").Replicas; r != 2 {
		t.Errorf("order replicas = %d, want 2 without the override", r)
	}
	if r := sys.Service("inventory").Replicas; r != 1 {
		t.Errorf("inventory replicas = %d, want 1", r)
	}
	if !slices.Equal(sys.Sources, shopFiles[:1]) {
		t.Errorf("sources = %v", sys.Sources)
	}
}

// writeFile writes a file in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.TrimLeft(content, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportHostResolution(t *testing.T) {
	p := writeFile(t, "compose.yaml", `
services:
  api:
    image: example/api
    links:
      - pg:maindb
    environment:
      - DB_HOST=maindb
      - SEARCH_URL=http://search.internal:9200/?token=tok-abc123
      - CACHE_HOST=memo
      - QUEUE=amqp://guest:guest@mq:5672/
      - FEATURE_HOST=nothing-here
      - MODE_SERVICE=legacy
      - HOSTNAME=api-1
    command: wait-for-it auth:9000 -- ./api
  pg:
    image: postgres
  es:
    image: elasticsearch:8.13.0
    networks:
      back:
        aliases: [search.internal]
  cache:
    image: redis
    hostname: memo
  queue:
    image: rabbitmq
    container_name: mq
  auth:
    image: example/auth
    networks: [back]
networks:
  back: {}
`)
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"api -> pg":           "sql",   // links alias maindb
		"api -> es":           "http",  // network alias
		"api -> cache":        "redis", // hostname
		"api -> queue":        "amqp",  // container_name
		"api -> auth":         "",      // command line host:port
		"api -> nothing-here": "",      // bare word under *_HOST: external
	}
	got := edgeSet(sys)
	if len(got) != len(want) {
		t.Errorf("edges = %v, want %v", got, want)
	}
	for k, p := range want {
		if gp, ok := got[k]; !ok || gp != p {
			t.Errorf("edge %s = %q (present %v), want %q", k, gp, ok, p)
		}
	}
	// MODE_SERVICE=legacy is a bare word under a key that is not *_HOST; HOSTNAME is the
	// container's own name: neither is an external.
	for _, name := range []string{"legacy", "api-1"} {
		if _, ok := components(sys)[name]; ok {
			t.Errorf("%q should not be an external", name)
		}
	}
	if y, _ := yaml.Marshal(sys); strings.Contains(string(y), "tok-abc123") || strings.Contains(string(y), "guest:guest") {
		t.Errorf("a credential reached the model:\n%s", y)
	}
	api := sys.Service("api")
	var secrets []string
	for _, s := range api.Secrets {
		secrets = append(secrets, s.Name+"="+s.From)
	}
	if want := []string{"QUEUE=literal", "SEARCH_URL=literal"}; !slices.Equal(secrets, want) {
		t.Errorf("api secrets = %v, want %v (guest:guest@ and ?token= in URLs)", secrets, want)
	}
}

func TestImportDependsOnForms(t *testing.T) {
	p := writeFile(t, "compose.yaml", `
services:
  a:
    image: example/a
    depends_on: [b, db]
  b:
    image: example/b
    depends_on:
      c:
        condition: service_healthy
      maybe:
        condition: service_started
        required: false
  c:
    image: example/c
    healthcheck:
      disable: true
  db:
    image: mysql:8
  maybe:
    image: example/maybe
    profiles: [extra]
`)
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a -> b": "", "a -> db": "sql", "b -> c": ""}
	if got := edgeSet(sys); len(got) != len(want) {
		t.Errorf("edges = %v, want %v", got, want)
	} else {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
	if sys.Service("c").Probes != nil {
		t.Error("a disabled healthcheck is not a probe")
	}
}

func TestImportDotEnvAndDirectoryName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My_Project")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	compose := filepath.Join(dir, "docker-compose.yml")
	os.WriteFile(compose, []byte("services:\n  app:\n    image: ${FAULTLINE_TEST_IMAGE}\n    environment:\n      DB: ${FAULTLINE_TEST_DB}:5432\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("FAULTLINE_TEST_IMAGE=postgres:16\nFAULTLINE_TEST_DB=db.example.com\n"), 0o644)
	sys, err := Import(context.Background(), []string{compose}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sys.Metadata.Name != "my_project" {
		t.Errorf("name = %q, want the normalized directory name", sys.Metadata.Name)
	}
	if d := sys.Datastore("app"); d == nil || d.Kind != "postgres" {
		t.Errorf("app should be a postgres datastore from the .env image, got %+v", components(sys))
	}
	if len(sys.Warnings) != 0 {
		t.Errorf("warnings = %v, want none: .env sets every variable", sys.Warnings)
	}
	// With Env given, the .env file is not read.
	sys, err = Import(context.Background(), []string{compose}, Options{Env: map[string]string{}})
	if err == nil {
		t.Fatalf("want an error: the image is empty without .env, got %+v", sys)
	}
}

func TestImportRecognitionFallbacks(t *testing.T) {
	p := writeFile(t, "compose.yaml", `
services:
  api:
    image: example/api
    environment:
      USERS: user-db:27017
  kafka:
    image: ghcr.io/acme/demo:1.0-kafka
  catalogue-db:
    image: acme/catalogue-db
    environment:
      MYSQL_ROOT_PASSWORD: x
  user-db:
    image: acme/user-db
  db-migrate:
    image: acme/migrations
`)
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]node{
		"api":          {model.KindService, "", 1},
		"kafka":        {model.KindBroker, "kafka", 1},    // named like the engine
		"catalogue-db": {model.KindDatastore, "mysql", 1}, // *-db with MYSQL_ variables
		"user-db":      {model.KindDatastore, "mongo", 1}, // *-db, called on MongoDB's port
		"db-migrate":   {model.KindService, "", 1},        // a tool, not a database
	}
	got := components(sys)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %+v, want %+v", k, got[k], w)
		}
	}
	if len(sys.Warnings) != 4 {
		t.Errorf("want one warning per guess, got %v", sys.Warnings)
	}
}

func TestImportVersionAttribute(t *testing.T) {
	p := writeFile(t, "compose.yaml", "version: \"3.8\"\nservices:\n  web:\n    image: nginx\n    deploy:\n      replicas: 2\n")
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if s := sys.Service("web"); s == nil || s.Replicas != 2 || s.Source.Line != 3 {
		t.Errorf("web = %+v", s)
	}
}

func TestImportIncludeAndJobs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(`include:
  - db.yaml
services:
  app:
    image: app
    environment:
      DB: postgres://db:5432/x
jobs:
  nightly:
    image: app
    triggers:
      schedule: ["0 3 * * *"]
    command: ["report", "--db", "postgres://db:5432/x"]
`), 0o644)
	os.WriteFile(filepath.Join(dir, "db.yaml"), []byte("services:\n  db:\n    image: postgres\n"), 0o644)
	sys, err := Import(context.Background(), []string{filepath.Join(dir, "compose.yaml")}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if d := sys.Datastore("db"); d == nil || d.Source.File != filepath.Join(dir, "db.yaml") || d.Source.Line != 2 {
		t.Errorf("included db = %+v", d)
	}
	job := sys.Service("nightly")
	if job == nil || job.Role != "worker" || job.Workload.Kind != "job" {
		t.Errorf("job = %+v", job)
	}
	if _, ok := edgeSet(sys)["nightly -> db"]; !ok {
		t.Errorf("job edge missing: %v", edgeSet(sys))
	}
}

func TestImportCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, shopFiles, Options{Env: shopEnv}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestImportEmptyOverrideAndZeroReplicas(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "compose.yaml")
	extras := filepath.Join(dir, "compose.extras.yaml")
	os.WriteFile(base, []byte("services:\n  web:\n    image: nginx\n  spare:\n    image: nginx\n    scale: 0\n"), 0o644)
	os.WriteFile(extras, []byte("# intentionally empty: forks add services here\n"), 0o644)
	sys, err := Import(context.Background(), []string{base, extras}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatalf("an empty override file is fine for docker compose: %v", err)
	}
	if s := sys.Service("spare"); s == nil || s.Replicas != 1 {
		t.Errorf("spare = %+v, want 1 replica", s)
	}
	if len(sys.Warnings) != 1 || !strings.Contains(sys.Warnings[0].Message, "0 replicas") || sys.Warnings[0].Line != 4 {
		t.Errorf("warnings = %v, want one about spare's 0 replicas at line 4", sys.Warnings)
	}
}

func TestImportConcurrently(t *testing.T) {
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			sys, err := Import(context.Background(), shopFiles, Options{Env: shopEnv})
			if err == nil && len(sys.Services) != 4 {
				err = errors.New("wrong service count")
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestImportEnvFileMissingVariable(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	os.WriteFile(compose, []byte("services:\n  app:\n    image: app\n    env_file: app.env\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.env"), []byte("# app settings\nHOST_A=db\nURL=http://${HOST_A}:80\nLITERAL='${NOT_A_VAR}'\nREGION=${FAULTLINE_TEST_REGION}\n"), 0o644)
	sys, err := Import(context.Background(), []string{compose}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.Warnings) != 1 {
		t.Fatalf("warnings = %v, want one for FAULTLINE_TEST_REGION", sys.Warnings)
	}
	w := sys.Warnings[0]
	if w.File != filepath.Join(dir, "app.env") || w.Line != 5 || !strings.Contains(w.Message, "FAULTLINE_TEST_REGION") {
		t.Errorf("warning = %v", w)
	}
}

func TestWithoutVersion(t *testing.T) {
	// blank is the comment a version line of n bytes becomes.
	blank := func(n int) string { return "#" + strings.Repeat(" ", n-1) }
	cases := []struct{ in, want string }{
		{"version: \"3.8\"\nservices: {}\n", blank(len(`version: "3.8"`)) + "\nservices: {}\n"},
		{"\xef\xbb\xbfversion: '3'\r\nservices: {}\r\n", "\xef\xbb\xbf" + blank(len("version: '3'")) + "\r\nservices: {}\r\n"},
		{"services: {}\nversion: 3 # old\n", "services: {}\n" + blank(len("version: 3 # old")) + "\n"},
		{"{version: 3, services: {}}\n", "{version: 3, services: {}}\n"},
		{"version: >\n  3\nservices: {}\n", "version: >\n  3\nservices: {}\n"},
		{"services: {}\n", "services: {}\n"},
	}
	for _, c := range cases {
		f := &file{data: []byte(c.in)}
		if probs := f.parse(); len(probs) > 0 {
			t.Fatalf("%q: %v", c.in, probs)
		}
		if got := string(withoutVersion(f)); got != c.want {
			t.Errorf("withoutVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
