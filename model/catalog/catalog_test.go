package catalog

import (
	"testing"

	"github.com/faultline-dev/faultline/model"
)

func TestRecognize(t *testing.T) {
	cases := []struct {
		image  string
		kind   model.ComponentKind
		engine string
	}{
		{"postgres:16-alpine", model.KindDatastore, "postgres"},
		{"docker.io/bitnami/postgresql:15@sha256:abcd", model.KindDatastore, "postgres"},
		{"mysql/mysql-server:8.0", model.KindDatastore, "mysql"},
		{"mariadb:11", model.KindDatastore, "mariadb"},
		{"mongo:7", model.KindDatastore, "mongo"},
		{"redis:alpine", model.KindDatastore, "redis"},
		{"valkey/valkey:8", model.KindDatastore, "redis"},
		{"memcached:1.6", model.KindDatastore, "memcached"},
		{"cassandra:4", model.KindDatastore, "cassandra"},
		{"docker.elastic.co/elasticsearch/elasticsearch:8.1.0", model.KindDatastore, "elasticsearch"},
		{"opensearchproject/opensearch:2", model.KindDatastore, "opensearch"},
		{"confluentinc/cp-kafka:7.6.0", model.KindBroker, "kafka"},
		{"bitnami/kafka", model.KindBroker, "kafka"},
		{"rabbitmq:3-management", model.KindBroker, "rabbitmq"},
		{"nats:2.10", model.KindBroker, "nats"},
		{"confluentinc/cp-zookeeper:7.6.0", model.KindDatastore, "zookeeper"},
		{"hashicorp/consul", model.KindDatastore, "consul"},
		{"quay.io/coreos/etcd:v3.5", model.KindDatastore, "etcd"},
	}
	for _, c := range cases {
		e, ok := Recognize(c.image)
		if !ok || e.Kind != c.kind || e.Engine != c.engine {
			t.Errorf("Recognize(%q) = %v %q %v, want %v %q", c.image, e.Kind, e.Engine, ok, c.kind, c.engine)
		}
	}
	for _, img := range []string{"prometheuscommunity/postgres-exporter", "provectuslabs/kafka-ui", "mongo-express", "rediscommander/redis-commander",
		"confluentinc/cp-kafka-connect", "confluentinc/cp-schema-registry", "nginx", "myorg/order-service:1.2", "${IMAGE}", "", "edoburu/pgbouncer"} {
		if e, ok := Recognize(img); ok {
			t.Errorf("Recognize(%q) = %v %q, want no match", img, e.Kind, e.Engine)
		}
	}
}

func TestRecognizeHints(t *testing.T) {
	if e, why := RecognizeHints([]string{"FOO", "MYSQL_ROOT_PASSWORD"}, nil); e.Engine != "mysql" || why == "" {
		t.Errorf("root password: %v %q", e.Engine, why)
	}
	if e, why := RecognizeHints(nil, []string{"http", "mongo"}); e.Engine != "mongo" || why == "" {
		t.Errorf("port name: %v %q", e.Engine, why)
	}
	// An application that connects to postgres sets these too; they must not make it a datastore.
	if _, why := RecognizeHints([]string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MYSQL_DATABASE"}, []string{"http"}); why != "" {
		t.Errorf("client variables recognized as a server: %q", why)
	}
}

func TestIsTool(t *testing.T) {
	for name, want := range map[string]bool{"db-backup": true, "postgres-exporter": true, "kafka_ui": true, "orders-db": false, "postgres": false} {
		if IsTool(name) != want {
			t.Errorf("IsTool(%q) = %v", name, !want)
		}
	}
}
