package review

import (
	"strings"
	"testing"
)

func TestStatefulServiceScaled(t *testing.T) {
	sys := system(t, `
services:
  - {name: session, replicas: 3, stateless: false}
  - {name: sharded, replicas: 3, stateless: false, partitioned: true}
  - {name: single, replicas: 1, stateless: false}
  - {name: unknown, replicas: 3}
  - {name: web, replicas: 3, stateless: true}
`)
	fs := findings(t, sys, "stateful-service-scaled", nil)
	availExpect(t, fs, []availWant{{"session", Warning}},
		"service session is stateful (stateless: false) and runs 3 replicas with no partitioning declared")
	if fs[0].Evidence[0].What != "service session" || fs[0].Evidence[0].Line != 6 {
		t.Errorf("evidence = %+v", fs[0].Evidence)
	}
}

func TestStatefulServiceScaledHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: web, replicas: 3, stateless: true}
  - {name: ledger, replicas: 4, stateless: false, partitioned: true}
`)
	availExpect(t, findings(t, sys, "stateful-service-scaled", nil), nil)
}

func TestHardCodedEndpoint(t *testing.T) {
	sys := system(t, `
services:
  - {name: a}
  - {name: b}
datastores:
  - {name: db, kind: postgres}
  - {name: cache, kind: redis}
externals:
  - {name: supplier, host: 10.20.0.15}
  - {name: v6, host: "2001:db8::7"}
  - {name: unused, host: 192.0.2.9}
  - {name: named, host: api.example.com}
edges:
  - {from: a, to: b, protocol: http, address: "http://10.0.0.12:8080/v1"}
  - {from: a, to: db, protocol: sql, address: "postgres://app@172.16.4.2:5432/orders?sslmode=require"}
  - {from: a, to: cache, protocol: redis, address: "[2001:db8::1]:6379"}
  - {from: b, to: supplier, protocol: http}
  - {from: b, to: v6, protocol: http}
  - {from: b, to: named, protocol: http, address: "https://api.example.com/stock"}
  - {from: b, to: db, protocol: sql, address: "127.0.0.1:5432"}
  - {from: b, to: cache, protocol: redis, address: "redis://cache:6379"}
`)
	fs := findings(t, sys, "hard-coded-endpoint", nil)
	availExpect(t, fs, []availWant{
		{"a → b", Warning}, {"a → cache", Warning}, {"a → db", Warning},
		{"b → supplier", Warning}, {"b → v6", Warning}, {"unused", Warning},
	}, "IP literal")
	want := map[string]string{
		"a → b":        "edge a → b calls b at the IP literal 10.0.0.12 (address http://10.0.0.12:8080/v1)",
		"a → cache":    "at the IP literal 2001:db8::1 (address [2001:db8::1]:6379)",
		"a → db":       "at the IP literal 172.16.4.2 (address postgres://app@172.16.4.2:5432/orders?sslmode=require)",
		"b → supplier": "edge b → supplier calls external supplier at the IP literal 10.20.0.15 (its host)",
		"b → v6":       "at the IP literal 2001:db8::7 (its host)",
		"unused":       "external unused is addressed by the IP literal 192.0.2.9",
	}
	for _, f := range fs {
		if text := want[strings.Join(f.Subjects, ",")]; !strings.Contains(f.Message, text) {
			t.Errorf("%v: message lacks %q:\n%s", f.Subjects, text, f.Message)
		}
	}
}

func TestHardCodedEndpointDSNs(t *testing.T) {
	for addr, ip := range map[string]string{
		"jdbc:mysql://10.1.1.1:3306/shop":           "10.1.1.1",
		"mongodb://db-0:27017,10.1.1.2:27017/app":   "10.1.1.2",
		"user@tcp(10.1.1.3:3306)/app":               "10.1.1.3",
		"host=10.1.1.4 port=5432 dbname=app":        "10.1.1.4",
		"kafka-0:9092,10.1.1.5:9092":                "10.1.1.5",
		"10.1.1.6":                                  "10.1.1.6",
		"amqp://guest@[fd00::6]:5672/vhost":         "fd00::6",
		"http://169.254.169.254/latest/meta-data/":  "169.254.169.254",
		"https://order.shop.svc.cluster.local:8443": "",
		"http://[::1]:8080":                         "",
		"0.0.0.0:9000":                              "",
		"":                                          "",
	} {
		got, ok := scalIPLiteral(addr)
		if got != ip || ok != (ip != "") {
			t.Errorf("scalIPLiteral(%q) = %q, %v; want %q", addr, got, ok, ip)
		}
	}
}

func TestHardCodedEndpointHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: a}
datastores:
  - {name: db, kind: postgres}
externals:
  - {name: psp, host: api.psp.example.com}
edges:
  - {from: a, to: db, protocol: sql, address: "postgres://app@db:5432/orders"}
  - {from: a, to: psp, protocol: http, address: "https://api.psp.example.com/v1"}
`)
	availExpect(t, findings(t, sys, "hard-coded-endpoint", nil), nil)
}

// TestScalabilityOnLegacyShop: legacy-shop.yaml's stateful session service runs three replicas,
// and warehouse calls its supplier by IP.
func TestScalabilityOnLegacyShop(t *testing.T) {
	byRule := availReview(t, "../examples/models/legacy-shop.yaml")
	availExpect(t, byRule["stateful-service-scaled"], []availWant{{"session", Warning}}, "runs 3 replicas")
	availExpect(t, byRule["hard-coded-endpoint"], []availWant{{"warehouse → supplier", Warning}},
		"at the IP literal 10.20.0.15 (address http://10.20.0.15:8080/stock; external supplier has host 10.20.0.15)")
}
