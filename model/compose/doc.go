// Package compose imports docker-compose projects into the faultline model.
//
// Import loads one or more compose files the way `docker compose -f a.yaml -f b.yaml` does
// (override order, profiles, extends, include, env_file, variable interpolation) with
// compose-spec/compose-go, then maps the project onto a model.System:
//
//   - Every enabled service becomes a service, datastore or broker, recognised from its image by
//     model/catalog, with replicas (deploy.replicas, else scale, else 1), the image and the
//     resources (deploy.resources limits and reservations, or cpus, mem_limit, mem_reservation),
//     as written in the file. When the image says nothing, a service named exactly like an engine
//     (kafka, opensearch) is that engine, and one named *-db is a datastore whose engine comes
//     from its MYSQL_/POSTGRES_/MONGO_INITDB_ variables, the port it exposes, or the port its
//     callers use; each such guess is a warning. Jobs (the jobs: section) are services with role
//     worker and workload kind job.
//   - Edges come from depends_on (both forms), links, and host references in environment values
//     (including env_file contents) and in command and entrypoint arguments, found by
//     model/hostref: URLs, host:port lists, DSNs, JDBC and MongoDB URIs, and bare names in *_HOST
//     style variables. A host resolves to a component by service name, container_name, hostname,
//     network alias, links alias, or the project-service-1 container name. A host that names
//     nothing becomes an external node when it is clearly a host (a URL, host:port, an IP address,
//     or a bare word in a variable named *_HOST, *_HOSTS or *_HOSTNAME); hosts of services in
//     inactive profiles are dropped. Variables describing the container's own address (LISTEN,
//     ADVERTISED, BIND, HOSTNAME) are not read. Datastores start no edges. An edge's protocol
//     comes from the URL scheme, else the target's engine, else the variable name (KAFKA_BROKERS
//     is kafka). Addresses are kept as evidence with any password replaced by ***.
//   - A healthcheck that is not disabled is a readiness probe: docker restarts nothing when it
//     fails (there is no liveness), but depends_on condition: service_healthy and anything
//     routing by health use it to hold traffic back, which is what readiness means.
//   - Secrets are recorded by name and origin, never by value: a variable named like a secret
//     (PASSWORD, PASS, SECRET, TOKEN, API_KEY, PRIVATE_KEY, ACCESS_KEY, CREDENTIALS...) with a value
//     written in the compose file is literal, one whose value is a ${VAR} reference or that is
//     passed from the shell is env, one set in an env_file or named *_FILE is file, and a URL that
//     carries a credential (user:password@, ?password=, ?token=) in any variable is literal;
//     compose secrets: entries are file.
//   - OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*ENDPOINT, JAEGER_* and *ZIPKIN* variables, or an
//     edge to a Jaeger, Zipkin or OpenTelemetry collector container, set observability.tracing;
//     OTEL_METRICS_EXPORTER sets observability.metrics. Compose has no zones; none are set.
//
// Every element keeps the file and line it was read from: a component the line of its key in the
// first file that defines it, an edge the line of the variable (in the compose file, through
// extends, or in the env_file), command or depends_on entry it came from.
//
// Bad input comes back as model.Problems naming the file, line and field: YAML errors, schema
// errors (compose-go's dotted path is looked up in the file), interpolation and consistency
// errors, missing or unreadable files, files that are not compose files. A variable that is not set
// and has no default is a warning in System.Warnings with its file and line, as docker compose
// treats it; so are services left out by profiles.
package compose
