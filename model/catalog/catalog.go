// Package catalog recognizes datastores and brokers from container image names. It is the one
// recognition table the compose and Kubernetes importers share; docs/model.md prints it.
package catalog

import (
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

// Entry says what an image family is.
type Entry struct {
	// Names are image names (the last path part, before the tag) that belong to the family. A name
	// matches the image name exactly or followed by "-" or "_" and more (postgres-alpine).
	Names []string
	// Kind is KindDatastore or KindBroker.
	Kind model.ComponentKind
	// Engine is the value written to datastores[].kind or brokers[].kind.
	Engine string
	// Protocol is the protocol of edges to it.
	Protocol string
	// Port is the engine's usual port, used to guess edges from bare ports.
	Port int
}

// Table is the recognition table, in match order.
var Table = []Entry{
	{Names: []string{"postgres", "postgresql", "postgis", "timescaledb", "pgvector", "supabase-postgres", "citus", "cockroach", "cockroachdb", "yugabytedb"}, Kind: model.KindDatastore, Engine: "postgres", Protocol: "sql", Port: 5432},
	{Names: []string{"mysql", "mysql-server", "percona", "percona-server", "tidb"}, Kind: model.KindDatastore, Engine: "mysql", Protocol: "sql", Port: 3306},
	{Names: []string{"mariadb", "mariadb-galera"}, Kind: model.KindDatastore, Engine: "mariadb", Protocol: "sql", Port: 3306},
	{Names: []string{"mssql", "mssql-server", "sqlserver"}, Kind: model.KindDatastore, Engine: "sqlserver", Protocol: "sql", Port: 1433},
	{Names: []string{"oracle", "oracle-xe", "oracle-free"}, Kind: model.KindDatastore, Engine: "oracle", Protocol: "sql", Port: 1521},
	{Names: []string{"mongo", "mongodb", "mongodb-community-server", "percona-server-mongodb"}, Kind: model.KindDatastore, Engine: "mongo", Protocol: "tcp", Port: 27017},
	{Names: []string{"redis", "redis-stack", "redis-stack-server", "valkey", "keydb", "dragonfly", "redis-cluster"}, Kind: model.KindDatastore, Engine: "redis", Protocol: "redis", Port: 6379},
	{Names: []string{"memcached"}, Kind: model.KindDatastore, Engine: "memcached", Protocol: "tcp", Port: 11211},
	{Names: []string{"cassandra", "scylla", "scylladb"}, Kind: model.KindDatastore, Engine: "cassandra", Protocol: "tcp", Port: 9042},
	{Names: []string{"elasticsearch", "elasticsearch-oss"}, Kind: model.KindDatastore, Engine: "elasticsearch", Protocol: "http", Port: 9200},
	{Names: []string{"opensearch"}, Kind: model.KindDatastore, Engine: "opensearch", Protocol: "http", Port: 9200},
	{Names: []string{"couchdb", "couchbase", "couchbase-server"}, Kind: model.KindDatastore, Engine: "couchdb", Protocol: "http", Port: 5984},
	{Names: []string{"neo4j"}, Kind: model.KindDatastore, Engine: "neo4j", Protocol: "tcp", Port: 7687},
	{Names: []string{"influxdb"}, Kind: model.KindDatastore, Engine: "influxdb", Protocol: "http", Port: 8086},
	{Names: []string{"clickhouse", "clickhouse-server"}, Kind: model.KindDatastore, Engine: "clickhouse", Protocol: "tcp", Port: 9000},
	{Names: []string{"minio"}, Kind: model.KindDatastore, Engine: "s3", Protocol: "http", Port: 9000},
	{Names: []string{"dynamodb-local"}, Kind: model.KindDatastore, Engine: "dynamodb", Protocol: "http", Port: 8000},
	{Names: []string{"zookeeper", "cp-zookeeper"}, Kind: model.KindDatastore, Engine: "zookeeper", Protocol: "tcp", Port: 2181},
	{Names: []string{"consul"}, Kind: model.KindDatastore, Engine: "consul", Protocol: "http", Port: 8500},
	{Names: []string{"etcd"}, Kind: model.KindDatastore, Engine: "etcd", Protocol: "grpc", Port: 2379},
	{Names: []string{"kafka", "cp-kafka", "cp-server", "redpanda", "kafka-native"}, Kind: model.KindBroker, Engine: "kafka", Protocol: "kafka", Port: 9092},
	{Names: []string{"rabbitmq"}, Kind: model.KindBroker, Engine: "rabbitmq", Protocol: "amqp", Port: 5672},
	{Names: []string{"nats", "nats-streaming"}, Kind: model.KindBroker, Engine: "nats", Protocol: "nats", Port: 4222},
	{Names: []string{"activemq", "activemq-artemis", "artemis"}, Kind: model.KindBroker, Engine: "activemq", Protocol: "amqp", Port: 61616},
	{Names: []string{"pulsar", "pulsar-all"}, Kind: model.KindBroker, Engine: "pulsar", Protocol: "tcp", Port: 6650},
	{Names: []string{"eclipse-mosquitto", "mosquitto", "emqx", "hivemq4", "vernemq"}, Kind: model.KindBroker, Engine: "mqtt", Protocol: "mqtt", Port: 1883},
	{Names: []string{"nsqd"}, Kind: model.KindBroker, Engine: "nsq", Protocol: "tcp", Port: 4150},
}

// notTheEngine are name parts that mark tools around an engine rather than the engine itself:
// postgres-exporter, kafka-ui, mongo-express, redis-commander.
var notTheEngine = map[string]bool{
	"exporter": true, "ui": true, "admin": true, "express": true, "commander": true, "insight": true,
	"connect": true, "operator": true, "registry": true, "rest": true, "proxy": true, "backup": true,
	"client": true, "cli": true, "init": true, "migrate": true, "migrations": true, "manager": true,
	"dashboard": true, "web": true, "console": true, "mirror": true, "mirrormaker": true, "schema": true,
	"ksql": true, "ksqldb": true, "setup": true, "exporter_": true, "bouncer": true, "pgbouncer": true,
	"sentinel-exporter": true, "streams": true, "monitor": true, "agent": true,
}

// ImageName returns the bare name of an image reference: the last path part without registry,
// tag or digest ("docker.io/bitnami/postgresql:15@sha256:…" → "postgresql").
func ImageName(image string) string {
	s := strings.TrimSpace(strings.ToLower(image))
	if i := strings.Index(s, "@"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.Index(s, ":"); i >= 0 {
		s = s[:i]
	}
	return s
}

// Recognize returns the table entry an image belongs to.
func Recognize(image string) (Entry, bool) {
	name := ImageName(image)
	if name == "" || strings.Contains(name, "$") {
		return Entry{}, false
	}
	if IsTool(name) {
		return Entry{}, false
	}
	for _, e := range Table {
		for _, n := range e.Names {
			if name == n || strings.HasPrefix(name, n+"-") || strings.HasPrefix(name, n+"_") || strings.HasPrefix(name, n+".") {
				return e, true
			}
		}
	}
	return Entry{}, false
}

// Engines returns the engine names known for a kind, sorted; docs and tests use it.
func Engines(kind model.ComponentKind) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range Table {
		if e.Kind == kind && !seen[e.Engine] {
			seen[e.Engine] = true
			out = append(out, e.Engine)
		}
	}
	sort.Strings(out)
	return out
}

// ProtocolFor returns the protocol of edges to an engine ("postgres" → "sql"), or "".
func ProtocolFor(engine string) string {
	for _, e := range Table {
		if e.Engine == engine {
			return e.Protocol
		}
	}
	return ""
}

// officialEnv are variables only the official database and broker images read (at first start);
// an image built FROM one of them (weaveworksdemos/catalogue-db) still takes them. Variables an
// application also sets to connect (POSTGRES_USER, MYSQL_DATABASE) are left out on purpose: they
// would turn ordinary services into datastores.
var officialEnv = map[string]string{
	"MYSQL_ROOT_PASSWORD": "mysql", "MYSQL_ALLOW_EMPTY_PASSWORD": "mysql", "MYSQL_RANDOM_ROOT_PASSWORD": "mysql",
	"MYSQL_ROOT_HOST": "mysql", "MARIADB_ROOT_PASSWORD": "mariadb", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "mariadb",
	"MARIADB_RANDOM_ROOT_PASSWORD": "mariadb", "PGDATA": "postgres", "POSTGRES_INITDB_ARGS": "postgres",
	"POSTGRES_HOST_AUTH_METHOD": "postgres", "POSTGRES_INITDB_WALDIR": "postgres",
	"MONGO_INITDB_ROOT_USERNAME": "mongo", "MONGO_INITDB_ROOT_PASSWORD": "mongo", "MONGO_INITDB_DATABASE": "mongo",
	"RABBITMQ_ERLANG_COOKIE": "rabbitmq", "RABBITMQ_NODENAME": "rabbitmq",
}

// IsTool reports whether a workload name marks a tool around an engine rather than the engine
// (db-backup, postgres-exporter, kafka-ui), so a postgres image named db-backup stays a service.
func IsTool(name string) bool {
	for _, p := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		if notTheEngine[p] {
			return true
		}
	}
	return false
}

// RecognizeHints recognizes a datastore or broker whose image is not in the table, from the
// variables the official images read (MYSQL_ROOT_PASSWORD, POSTGRES_DB...) or a port named after
// an engine (mysql, mongo). why says which hint matched, and is empty when none did.
func RecognizeHints(envNames, portNames []string) (e Entry, why string) {
	for _, name := range envNames {
		if engine, ok := officialEnv[name]; ok {
			if entry, ok := entryFor(engine); ok {
				return entry, "its variable " + name
			}
		}
	}
	for _, p := range portNames {
		name := strings.ToLower(p)
		if name == "" {
			continue
		}
		for _, entry := range Table {
			if name == entry.Engine || containsString(entry.Names, name) {
				return entry, "its port named " + name
			}
		}
	}
	return Entry{}, ""
}

func entryFor(engine string) (Entry, bool) {
	for _, e := range Table {
		if e.Engine == engine {
			return e, true
		}
	}
	return Entry{}, false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
