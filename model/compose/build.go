package compose

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/assemble"
	"github.com/faultline-dev/faultline/model/catalog"
	"github.com/faultline-dev/faultline/model/hostref"
)

// importer maps a loaded compose project onto the model.
type importer struct {
	set *fileSet
	p   *types.Project
	b   *assemble.Builder

	// workloads are the enabled services and jobs, sorted by name.
	workloads []workload
	// hosts maps every name a container answers to on the compose network (service name,
	// container_name, hostname, network aliases) to its component.
	hosts map[string]string
	// inactive are the hosts of services left out by profiles; references to them are dropped
	// rather than turned into external nodes.
	inactive map[string]bool
	// edges are the from/to pairs added, in order, for the passes that read them back.
	edges [][2]string
	// env holds the interpolation variables.
	env map[string]string
}

// workload is a service or job of the project.
type workload struct {
	name    string
	section string // "services" or "jobs"
	cfg     types.ServiceConfig
	kind    model.ComponentKind
	src     model.Source
}

func newImporter(set *fileSet, p *types.Project, name string, env map[string]string) *importer {
	im := &importer{set: set, p: p, b: assemble.New(name), hosts: map[string]string{}, inactive: map[string]bool{}, env: env}
	for n, svc := range p.Services {
		im.workloads = append(im.workloads, workload{name: n, section: "services", cfg: svc})
	}
	for n, job := range p.Jobs {
		cfg := types.ServiceConfig{Name: n, Profiles: job.Profiles, ContainerSpec: job.ContainerSpec, WorkloadSpec: job.WorkloadSpec}
		im.workloads = append(im.workloads, workload{name: n, section: "jobs", cfg: cfg})
	}
	sort.Slice(im.workloads, func(i, j int) bool { return im.workloads[i].name < im.workloads[j].name })
	return im
}

func (im *importer) run() {
	for i := range im.workloads {
		im.addComponent(&im.workloads[i])
	}
	im.indexHosts()
	for i := range im.workloads {
		w := &im.workloads[i]
		if w.kind == model.KindDatastore {
			// A datastore's settings (replication peers, seeds) are not calls the model can hold:
			// edges start at services and brokers.
			continue
		}
		im.addEdges(w)
	}
	im.typeFromCallers()
	im.tracingFromTargets()
	im.warnInactive()
	im.warnEnvFiles()
}

// warnEnvFiles reports variables that env_file contents use without a value.
func (im *importer) warnEnvFiles() {
	seen := map[string]bool{}
	for _, w := range im.workloads {
		for _, ef := range w.cfg.EnvFiles {
			if seen[ef.Path] {
				continue
			}
			seen[ef.Path] = true
			for _, p := range missingInEnvFile(im.set.display(ef.Path), ef.Path, im.env) {
				im.b.Warn(p)
			}
		}
	}
}

// tracingBackend names the tracing system an image or service name is (jaegertracing/all-in-one,
// jaeger-agent, openzipkin/zipkin, otel/opentelemetry-collector, otel-collector), or "".
func tracingBackend(name string) string {
	parts := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "jaeger"):
			return "jaeger"
		case p == "zipkin":
			return "zipkin"
		case p == "otelcol", p == "otel" && i+1 < len(parts) && parts[i+1] == "collector",
			p == "opentelemetry" && i+1 < len(parts) && parts[i+1] == "collector":
			return "otel"
		}
	}
	return ""
}

func (im *importer) addEdge(e model.Edge) {
	if e.From == e.To {
		return
	}
	im.b.AddEdge(e)
	im.edges = append(im.edges, [2]string{e.From, e.To})
}

// typeFromCallers gives a datastore of unknown kind the engine whose usual port its callers use
// (user-db:27017 is MongoDB).
func (im *importer) typeFromCallers() {
	for _, pair := range im.edges {
		d := im.b.Datastore(pair[1])
		if d == nil || d.Kind != "" {
			continue
		}
		e := im.b.Edge(pair[0], pair[1])
		if e == nil {
			continue
		}
		port := 0
		if r := hostref.Find("", e.Address); len(r) > 0 {
			port = r[0].Port
		}
		for _, entry := range catalog.Table {
			if entry.Kind == model.KindDatastore && port != 0 && entry.Port == port {
				d.Kind = entry.Engine
				im.b.Warnf(d.Source, "%q is taken to be %s: %s calls it on port %d", d.Name, entry.Engine, pair[0], port)
				break
			}
		}
	}
	for _, pair := range im.edges {
		if d := im.b.Datastore(pair[1]); d != nil && d.Kind != "" {
			if e := im.b.Edge(pair[0], pair[1]); e != nil && e.Protocol == "" {
				e.Protocol = catalog.ProtocolFor(d.Kind)
			}
		}
	}
}

// tracingFromTargets marks a service as traced when it calls or depends on a tracing backend
// (Jaeger, Zipkin, an OpenTelemetry collector) and its environment did not already say how.
func (im *importer) tracingFromTargets() {
	backend := map[string]string{}
	for _, w := range im.workloads {
		if t := tracingBackend(catalog.ImageName(w.cfg.Image)); t != "" {
			backend[w.name] = t
		} else if t := tracingBackend(w.name); t != "" {
			backend[w.name] = t
		}
	}
	for _, pair := range im.edges {
		svc := im.b.Service(pair[0])
		if svc == nil || svc.Observability != nil && svc.Observability.Tracing != "" {
			continue
		}
		t := backend[pair[1]]
		if t == "" {
			continue
		}
		if svc.Observability == nil {
			svc.Observability = &model.Observability{}
		}
		svc.Observability.Tracing = t
	}
}

func (im *importer) addComponent(w *workload) {
	w.src = im.set.definition(w.section, w.name).source()
	s := w.cfg
	replicas := 1
	switch {
	case s.Deploy != nil && s.Deploy.Replicas != nil:
		replicas = *s.Deploy.Replicas
	case s.Scale != nil:
		replicas = *s.Scale
	}
	if replicas < 1 {
		im.b.Warnf(w.src, "%s %q has %d replicas (compose starts none by default); imported with 1", strings.TrimSuffix(w.section, "s"), w.name, replicas)
		replicas = 1
	}
	wl := &model.Workload{Platform: "compose", Kind: "service", Image: s.Image, Resources: im.resources(w)}
	if w.section == "jobs" {
		wl.Kind = "job"
	}
	w.kind = im.addTyped(w, replicas, wl)
	switch w.kind {
	case model.KindDatastore:
		// A database container's root password written in the file is a plaintext secret too.
		if d := im.b.Datastore(w.name); d != nil {
			d.Secrets = im.secrets(w)
		}
		return
	case model.KindBroker:
		if br := im.b.Broker(w.name); br != nil {
			br.Secrets = im.secrets(w)
		}
		return
	}
	svc := im.b.Service(w.name)
	if svc == nil {
		return
	}
	if w.section == "jobs" {
		svc.Role = "worker"
	}
	if hc := s.HealthCheck; hc != nil && !hc.Disable && !(len(hc.Test) > 0 && hc.Test[0] == "NONE") {
		// Docker restarts nothing on a failed healthcheck (no liveness); depends_on with
		// condition service_healthy and load balancers in front use it to gate traffic, which is
		// what a readiness probe is.
		svc.Probes = &model.Probes{Readiness: true}
	}
	svc.Secrets = im.secrets(w)
	svc.Observability = observability(s.Environment)
}

// addTyped adds a workload as a datastore, broker or service. The image decides, through the
// catalog. When the image says nothing (a custom build of an engine, such as demo:latest-kafka or
// weaveworksdemos/user-db), two fallbacks apply, each with a warning so the guess is visible: a
// service named exactly like an engine (kafka, postgres) is that engine, and a service named *-db
// is a datastore, of the engine its ports or environment point to when they do.
func (im *importer) addTyped(w *workload, replicas int, wl *model.Workload) model.ComponentKind {
	s := w.cfg
	if w.section == "jobs" {
		// A job runs to completion (a backup with the postgres image is not a database).
		im.b.AddService(model.Service{Name: w.name, Replicas: replicas, Workload: wl, Source: w.src})
		return model.KindService
	}
	if _, ok := catalog.Recognize(s.Image); ok {
		return im.b.AddComponent(w.name, s.Image, replicas, wl, w.src)
	}
	what := "its image " + strconv.Quote(s.Image)
	if s.Image == "" {
		what = "it has no image"
	}
	if e, ok := catalog.Recognize(w.name); ok && slices.Contains(e.Names, strings.ToLower(w.name)) {
		im.b.Warnf(w.src, "%q is typed as a %s (%s) from its name: %s is not in the recognition table", w.name, e.Kind, e.Engine, what)
		return im.b.AddComponent(w.name, e.Names[0], replicas, wl, w.src)
	}
	if !looksLikeDatabase(w.name) {
		return im.b.AddComponent(w.name, s.Image, replicas, wl, w.src)
	}
	if e, ok := engineEvidence(s); ok {
		im.b.Warnf(w.src, "%q is typed as a %s (%s) from its name and %s: %s is not in the recognition table", w.name, e.Kind, e.Engine, e.why, what)
		return im.b.AddComponent(w.name, e.Names[0], replicas, wl, w.src)
	}
	im.b.Warnf(w.src, "%q is typed as a datastore of unknown kind from its name: %s is not in the recognition table", w.name, what)
	im.b.AddDatastore(model.Datastore{Name: w.name, Replicas: replicas, Workload: wl, Source: w.src})
	return model.KindDatastore
}

// looksLikeDatabase reports names such as user-db, catalogue_db, ordersdb or database, but not the
// tools around a database (db-migrate, setup-db, db-backup).
func looksLikeDatabase(name string) bool {
	parts := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	if len(parts) == 0 {
		return false
	}
	for _, p := range parts {
		switch p {
		case "migrate", "migration", "migrations", "migrator", "init", "setup", "seed", "seeder", "backup",
			"restore", "admin", "ui", "exporter", "proxy", "client", "cli", "dump", "loader", "wait":
			return false
		}
	}
	last := parts[len(parts)-1]
	return last == "db" || last == "database" || (len(parts) == 1 && strings.HasSuffix(last, "db") && len(last) > 2)
}

// evidence is a catalog entry with the reason it was chosen.
type evidence struct {
	catalog.Entry
	why string
}

// engineEvidence finds the engine a database container runs: from the variables the official
// images read (MYSQL_ROOT_PASSWORD, POSTGRES_DB, MONGO_INITDB_...) or a port named after an engine,
// through catalog.RecognizeHints, else from the engine's usual port among those it exposes.
func engineEvidence(s types.ServiceConfig) (evidence, bool) {
	envs := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		envs = append(envs, strings.ToUpper(k))
	}
	sort.Strings(envs)
	var names []string
	for _, p := range s.Ports {
		names = append(names, p.Name)
	}
	if e, why := catalog.RecognizeHints(envs, names); why != "" {
		return evidence{e, why}, true
	}
	var ports []int
	for _, p := range s.Ports {
		ports = append(ports, int(p.Target))
	}
	for _, x := range s.Expose {
		if n, err := strconv.Atoi(strings.Split(x, "/")[0]); err == nil {
			ports = append(ports, n)
		}
	}
	for _, port := range ports {
		for _, e := range catalog.Table {
			if e.Kind == model.KindDatastore && e.Port == port {
				return evidence{e, "port " + strconv.Itoa(port)}, true
			}
		}
	}
	return evidence{}, false
}

// resources reads deploy.resources (and the older cpus, mem_limit, mem_reservation) as written in
// the file when it can, since "512M" says more to a reader than 536870912.
func (im *importer) resources(w *workload) *model.Resources {
	s := w.cfg
	r := &model.Resources{}
	written := func(keys ...string) string {
		loc, ok := im.set.find(w.section, w.name, func(svc *yaml.Node) *yaml.Node {
			_, v := path(svc, keys...)
			if v != nil && v.Kind == yaml.ScalarNode && !strings.Contains(v.Value, "$") {
				return v
			}
			return nil
		})
		if !ok {
			return ""
		}
		return loc.n.Value
	}
	if d := s.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			r.CPULimit = orWritten(written("deploy", "resources", "limits", "cpus"), cpus(float32(l.NanoCPUs)))
			r.MemoryLimit = orWritten(written("deploy", "resources", "limits", "memory"), bytesText(int64(l.MemoryBytes)))
		}
		if rs := d.Resources.Reservations; rs != nil {
			r.CPURequest = orWritten(written("deploy", "resources", "reservations", "cpus"), cpus(float32(rs.NanoCPUs)))
			r.MemoryRequest = orWritten(written("deploy", "resources", "reservations", "memory"), bytesText(int64(rs.MemoryBytes)))
		}
	}
	if r.CPULimit == "" && s.CPUS > 0 {
		r.CPULimit = orWritten(written("cpus"), cpus(s.CPUS))
	}
	if r.MemoryLimit == "" && s.MemLimit > 0 {
		r.MemoryLimit = orWritten(written("mem_limit"), bytesText(int64(s.MemLimit)))
	}
	if r.MemoryRequest == "" && s.MemReservation > 0 {
		r.MemoryRequest = orWritten(written("mem_reservation"), bytesText(int64(s.MemReservation)))
	}
	if *r == (model.Resources{}) {
		return nil
	}
	return r
}

// orWritten prefers the text from the file, but only when compose read a value at all.
func orWritten(written, computed string) string {
	if computed == "" {
		return ""
	}
	if written != "" {
		return written
	}
	return computed
}

func cpus(v float32) string {
	if v <= 0 {
		return ""
	}
	return strconv.FormatFloat(float64(v), 'f', -1, 32)
}

// bytesText formats a byte count in docker's units (binary multiples, as docker reads "512m").
func bytesText(n int64) string {
	if n <= 0 {
		return ""
	}
	for _, u := range []struct {
		size int64
		unit string
	}{{1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

// indexHosts records the names each component answers to. Service names win over other names;
// among the rest, the first component by name wins.
func (im *importer) indexHosts() {
	add := func(host, comp string) {
		h := strings.ToLower(strings.TrimSpace(host))
		if h == "" {
			return
		}
		if _, taken := im.hosts[h]; !taken {
			im.hosts[h] = comp
		}
	}
	for _, w := range im.workloads {
		add(w.name, w.name)
	}
	for _, w := range im.workloads {
		for _, h := range otherNames(im.p.Name, w.name, w.cfg) {
			add(h, w.name)
		}
	}
	for n, svc := range im.p.DisabledServices {
		for _, h := range append(otherNames(im.p.Name, n, svc), n) {
			if _, taken := im.hosts[strings.ToLower(h)]; !taken {
				im.inactive[strings.ToLower(h)] = true
			}
		}
	}
	for n := range im.p.DisabledJobs {
		im.inactive[strings.ToLower(n)] = true
	}
}

// otherNames are the names besides the service name that reach a container: container_name,
// hostname (and hostname.domainname), network aliases, and the names compose gives containers
// (project-service-1, and project_service_1 from compose v1).
func otherNames(project, name string, s types.ServiceConfig) []string {
	out := []string{s.ContainerName, s.Hostname}
	if s.Hostname != "" && s.DomainName != "" {
		out = append(out, s.Hostname+"."+s.DomainName)
	}
	nets := make([]string, 0, len(s.Networks))
	for n := range s.Networks {
		nets = append(nets, n)
	}
	sort.Strings(nets)
	for _, n := range nets {
		if cfg := s.Networks[n]; cfg != nil {
			out = append(out, cfg.Aliases...)
		}
	}
	if project != "" {
		out = append(out, project+"-"+name+"-1", project+"_"+name+"_1")
	}
	return out
}

// resolver resolves hosts for one workload: its links aliases first, then the project's names.
func (im *importer) resolver(w *workload) assemble.Resolver {
	links := map[string]string{}
	for _, l := range w.cfg.Links {
		target, alias, _ := strings.Cut(l, ":")
		if comp, ok := im.hosts[strings.ToLower(target)]; ok {
			links[strings.ToLower(target)] = comp
			if alias != "" {
				links[strings.ToLower(alias)] = comp
			}
		}
	}
	return func(host string) (string, bool) {
		if c, ok := links[host]; ok {
			return c, true
		}
		c, ok := im.hosts[host]
		return c, ok
	}
}

func (im *importer) addEdges(w *workload) {
	resolve := im.resolver(w)
	s := w.cfg

	// Environment first: its edges carry the protocol and the address, and the line of the
	// variable is the better evidence.
	keys := make([]string, 0, len(s.Environment))
	for k, v := range s.Environment {
		if v != nil && *v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if selfDescribing(k) {
			continue
		}
		refs := hostref.Find(k, *s.Environment[k])
		if len(refs) == 0 {
			continue
		}
		src := im.envSource(w, k)
		for _, r := range refs {
			im.edgeFromRef(w, k, r, resolve, src)
		}
	}

	for _, attr := range []struct {
		name string
		args types.ShellCommand
	}{{"entrypoint", s.Entrypoint}, {"command", s.Command}} {
		if len(attr.args) == 0 {
			continue
		}
		refs := hostref.FindInArgs(attr.args)
		if len(refs) == 0 {
			continue
		}
		src := im.attrSource(w, attr.name)
		for _, r := range refs {
			im.edgeFromRef(w, "", r, resolve, src)
		}
	}

	deps := make([]string, 0, len(s.DependsOn))
	for d := range s.DependsOn {
		deps = append(deps, d)
	}
	sort.Strings(deps)
	for _, d := range deps {
		if _, ok := im.b.Kind(d); !ok {
			continue // in an inactive profile, and not required
		}
		im.addEdge(model.Edge{From: w.name, To: d, Source: im.entrySource(w, "depends_on", d, scalarNames)})
	}

	for _, l := range s.Links {
		target, _, _ := strings.Cut(l, ":")
		if _, ok := im.b.Kind(target); !ok {
			continue
		}
		im.addEdge(model.Edge{From: w.name, To: target, Source: im.entrySource(w, "links", l, scalarNames)})
	}
}

// edgeFromRef adds the edge a host reference implies. A host that names no container becomes an
// external node only when it is clearly a host: a URL, host:port, an IP address, or a bare word in
// a variable named *_HOST.
func (im *importer) edgeFromRef(w *workload, key string, r hostref.Ref, resolve assemble.Resolver, src model.Source) {
	bareIsHost := bareHostKey(key)
	if _, ok := resolve(r.Host); !ok {
		if im.inactive[r.Host] {
			return
		}
		if r.Scheme == "" && r.Port == 0 && !r.IP && !bareIsHost {
			return
		}
	}
	// The address is kept as evidence; a password in it is not.
	r.Raw = redactUserinfo(r.Raw)
	to := im.b.EdgeFromRef(w.name, r, resolve, src)
	if to == w.name {
		return // its own address
	}
	im.edges = append(im.edges, [2]string{w.name, to})
	if e := im.b.Edge(w.name, to); e != nil && e.Protocol == "" {
		e.Protocol = keyProtocol(key)
	}
}

// redactUserinfo replaces the password of a URL's user:password@, and the values of query
// parameters named like secrets (?password=, &token=), with ***.
func redactUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params := strings.Split(rest[q+1:], "&")
		for j, kv := range params {
			if k, v, ok := strings.Cut(kv, "="); ok && v != "" && (secretClass(k) == "value" || strings.EqualFold(k, "pwd")) {
				params[j] = k + "=***"
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		if user, pass, ok := strings.Cut(rest[:at], ":"); ok && pass != "" {
			rest = user + ":***" + rest[at:]
		}
	}
	return raw[:i+3] + rest
}

// keyProtocol guesses the protocol of a host reference whose value has no scheme from the name of
// the variable holding it (KAFKA_BROKERS, REDIS_HOST), for targets the catalog does not type, such
// as external hosts.
func keyProtocol(key string) string {
	for _, p := range strings.FieldsFunc(strings.ToUpper(key), func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		switch p {
		case "KAFKA":
			return "kafka"
		case "RABBIT", "RABBITMQ", "AMQP":
			return "amqp"
		case "REDIS", "VALKEY":
			return "redis"
		case "NATS":
			return "nats"
		case "MQTT":
			return "mqtt"
		case "POSTGRES", "POSTGRESQL", "PG", "PGHOST", "MYSQL", "MARIADB", "MSSQL":
			return "sql"
		case "GRPC":
			return "grpc"
		}
	}
	return ""
}

// selfDescribing reports variables that hold the container's own addresses (where it listens or
// what it advertises), not something it calls.
func selfDescribing(key string) bool {
	k := strings.ToUpper(key)
	if k == "HOSTNAME" || k == "HOST" || k == "PORT" {
		return true
	}
	for _, p := range strings.FieldsFunc(k, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		switch p {
		case "LISTEN", "LISTENER", "LISTENERS", "ADVERTISED", "ADVERTISE", "BIND":
			return true
		}
	}
	return false
}

// bareHostKey reports whether a variable is named like it holds exactly a host name (DB_HOST,
// REDIS_HOSTNAME), so an unknown bare word in it is an external host.
func bareHostKey(key string) bool {
	parts := strings.FieldsFunc(strings.ToUpper(key), func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(parts) == 0 {
		return false
	}
	switch parts[len(parts)-1] {
	case "HOST", "HOSTS", "HOSTNAME":
		return true
	}
	return false
}

// scalarNames reads a list item that is a plain name (depends_on: [db], links: [db:alias]).
func scalarNames(item *yaml.Node) []string {
	if item != nil && item.Kind == yaml.ScalarNode {
		return []string{item.Value}
	}
	return nil
}

// envSource is the line that sets a variable: in the compose file, or in an env_file.
func (im *importer) envSource(w *workload, key string) model.Source {
	if loc, ok := im.set.find(w.section, w.name, func(svc *yaml.Node) *yaml.Node {
		if e, ok := findEnv(svc, key); ok {
			return e.node
		}
		return nil
	}); ok {
		return loc.source()
	}
	for i := len(w.cfg.EnvFiles) - 1; i >= 0; i-- {
		p := w.cfg.EnvFiles[i].Path
		if n := im.set.envFileLine(p, key); n > 0 {
			return model.Source{File: im.set.display(p), Line: n}
		}
	}
	return w.src
}

// attrSource is the line of an attribute of a workload, or the workload's own line.
func (im *importer) attrSource(w *workload, attr string) model.Source {
	if loc, ok := im.set.find(w.section, w.name, func(svc *yaml.Node) *yaml.Node {
		k, _ := get(svc, attr)
		return k
	}); ok {
		return loc.source()
	}
	return w.src
}

// entrySource is the line of the list entry or mapping key that names target in an attribute.
func (im *importer) entrySource(w *workload, attr, target string, names func(*yaml.Node) []string) model.Source {
	if loc, ok := im.set.find(w.section, w.name, func(svc *yaml.Node) *yaml.Node {
		return listEntry(svc, attr, names, target)
	}); ok {
		return loc.source()
	}
	return im.attrSource(w, attr)
}

// warnInactive says which services profiles left out, so a reader of the model knows they exist.
func (im *importer) warnInactive() {
	names := make([]string, 0, len(im.p.DisabledServices))
	for n := range im.p.DisabledServices {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		src := im.set.definition("services", n).source()
		im.b.Warnf(src, "service %q is not imported: its profiles (%s) are not active", n, strings.Join(im.p.DisabledServices[n].Profiles, ", "))
	}
}
