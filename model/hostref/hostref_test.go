package hostref

import (
	"reflect"
	"strings"
	"testing"
)

func hosts(refs []Ref) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.Host)
	}
	return out
}

func TestFind(t *testing.T) {
	cases := []struct {
		key, value string
		want       []string
	}{
		{"DATABASE_URL", "postgres://user:secret@orderdb:5432/orders?sslmode=disable", []string{"orderdb"}},
		{"", "http://cart:8080/api", []string{"cart"}},
		{"SPRING_DATASOURCE_URL", "jdbc:mysql://mysql-primary:3306/shop?useSSL=false", []string{"mysql-primary"}},
		{"MONGO_URI", "mongodb://u:p@mongo1:27017,mongo2:27017,mongo3/db?replicaSet=rs0", []string{"mongo1", "mongo2", "mongo3"}},
		{"KAFKA_BROKERS", "kafka-0:9092,kafka-1:9092", []string{"kafka-0", "kafka-1"}},
		{"PRODUCT_CATALOG_SERVICE_ADDR", "productcatalogservice:3550", []string{"productcatalogservice"}},
		{"DB_HOST", "db", []string{"db"}},
		{"REDIS_ADDR", "redis-cart.default.svc.cluster.local:6379", []string{"redis-cart.default.svc.cluster.local"}},
		{"DSN", "host=pg port=5432 user=app dbname=app sslmode=require", []string{"pg"}},
		{"MYSQL_DSN", "root:pw@tcp(mysql:3306)/app?parseTime=true", []string{"mysql"}},
		{"LEGACY", "10.0.3.7:8080", []string{"10.0.3.7"}},
		{"OTEL_SERVICE_NAME", "frontend", []string{}},
		{"LOG_LEVEL", "info", []string{}},
		{"TIMEOUT", "12:30", []string{}},
		{"LISTEN", "0.0.0.0:8080", []string{}},
		{"API_URL", "http://localhost:3000", []string{}},
		{"FOO_HOST", "${HOST}", []string{}},
		{"ENABLE_HOST", "true", []string{}},
		{"ZIPKIN", "zipkin.jaeger.svc.cluster.local", []string{"zipkin.jaeger.svc.cluster.local"}},
		{"UPSTREAM_NAME", "cart.shop.svc", []string{"cart.shop.svc"}},
	}
	for _, c := range cases {
		got := hosts(Find(c.key, c.value))
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Find(%q, %q) = %v, want %v", c.key, c.value, got, c.want)
		}
	}
}

func TestFindDetails(t *testing.T) {
	r := Find("URL", "https://payments.example.com:8443/v1")
	if len(r) != 1 || !r[0].TLS || r[0].Port != 8443 || r[0].Scheme != "https" {
		t.Fatalf("got %+v", r)
	}
	r = Find("DSN", "host=pg port=6432 sslmode=verify-full")
	if len(r) != 1 || !r[0].TLS || r[0].Port != 6432 {
		t.Fatalf("got %+v", r)
	}
	r = Find("DATABASE_URL", "postgres://app:s3cret@db:5432/app")
	if len(r) != 1 || r[0].Raw != "postgres://db:5432/app" {
		t.Fatalf("credentials kept in Raw: %+v", r)
	}
	r = Find("MONGO_URL", "mongodb://db:27017/app?authSource=admin&password=hunter2&tls=false")
	if len(r) != 1 || strings.Contains(r[0].Raw, "hunter2") || !strings.Contains(r[0].Raw, "password=***") {
		t.Fatalf("secret query parameter kept: %+v", r)
	}
	r = Find("X", "10.1.2.3:5432")
	if len(r) != 1 || !r[0].IP {
		t.Fatalf("got %+v", r)
	}
}

func TestFindInArgs(t *testing.T) {
	got := hosts(FindInArgs([]string{"./wait-for-it.sh", "db:5432", "--", "app", "--redis-host", "cache", "--upstream=http://api:80", "-h", "search"}))
	want := []string{"db", "cache", "api", "search"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func FuzzFind(f *testing.F) {
	for _, s := range []string{"postgres://u:p@db:5432/x", "a:1,b:2", "host=x port=1", "u@tcp(h:1)/d", "[::1]:80", "http://[fe80::1]:8080/"} {
		f.Add("URL", s)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		for _, r := range Find(key, value) {
			if r.Host == "" || r.Port < 0 || r.Port > 65535 {
				t.Fatalf("bad ref %+v from %q", r, value)
			}
		}
	})
}
