package review

import (
	"strings"
	"testing"
)

func TestUnencryptedEdge(t *testing.T) {
	sys := system(t, `
services:
  - {name: a, datastores: [listed]}
  - {name: b}
  - {name: c}
datastores:
  - {name: db, kind: postgres}
  - {name: listed, kind: mysql}
brokers:
  - {name: bus, kind: kafka}
externals:
  - {name: psp, host: api.psp.example.com}
edges:
  - {from: a, to: b, protocol: http, tls: false}
  - {from: a, to: c, protocol: grpc}
  - {from: a, to: db, protocol: sql, tls: true}
  - {from: a, to: psp, protocol: http}
  - {from: a, to: bus, protocol: kafka}
  - {from: bus, to: c, protocol: kafka, tls: true}
  - {from: b, to: c, protocol: grpc, auth: mtls}
`)
	fs := findings(t, sys, "unencrypted-edge", nil)
	availExpect(t, fs, []availWant{
		{"a → psp", Error},
		{"a → b", Warning}, {"a → bus", Warning}, {"a → c", Warning}, {"a → listed", Warning},
	})
	want := map[string]string{
		"a → psp":    "edge a → psp (http, sync) leaves the system for external psp unencrypted (tls is not set)",
		"a → b":      "edge a → b (http, sync) to service b is not known to be encrypted in transit (tls: false)",
		"a → bus":    "edge a → bus (kafka, async) to broker bus is not known to be encrypted in transit (tls is not set)",
		"a → c":      "edge a → c (grpc, sync) to service c is not known to be encrypted in transit (tls is not set)",
		"a → listed": "edge a → listed (sync) to datastore listed is not known to be encrypted in transit (the service lists the datastore with no edge",
	}
	for _, f := range fs {
		subject := strings.Join(f.Subjects, ",")
		if !strings.Contains(f.Message, want[subject]) {
			t.Errorf("%s: message lacks %q:\n%s", subject, want[subject], f.Message)
		}
		if subject == "a → listed" && (f.Evidence[0].Line != 6 || f.Evidence[0].What != "service a lists datastore listed (no edge declared)") {
			t.Errorf("implicit edge evidence = %+v", f.Evidence)
		}
		if subject == "a → psp" && (len(f.Evidence) != 2 || f.Evidence[1].What != "external psp") {
			t.Errorf("external edge evidence = %+v", f.Evidence)
		}
	}
}

func TestUnencryptedEdgeHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: a, datastores: [db]}
  - {name: b}
datastores:
  - {name: db, kind: postgres}
edges:
  - {from: a, to: b, protocol: http, tls: true}
  - {from: a, to: db, protocol: sql, tls: true}
`)
	availExpect(t, findings(t, sys, "unencrypted-edge", nil), nil)
}

func TestUnauthenticatedEdge(t *testing.T) {
	sys := system(t, `
services:
  - {name: a, datastores: [listed]}
  - {name: b}
  - {name: c}
  - {name: d}
datastores:
  - {name: db, kind: postgres}
  - {name: open, kind: redis}
  - {name: listed, kind: mysql}
brokers:
  - {name: bus, kind: kafka}
  - {name: openbus, kind: nats}
externals:
  - {name: psp, host: api.psp.example.com}
edges:
  - {from: a, to: b, protocol: http}
  - {from: a, to: c, protocol: grpc, auth: none}
  - {from: a, to: d, protocol: http, auth: jwt}
  - {from: a, to: psp, protocol: http}
  - {from: a, to: db, protocol: sql}
  - {from: a, to: open, protocol: redis, auth: none}
  - {from: a, to: bus, protocol: kafka}
  - {from: a, to: openbus, protocol: nats, auth: none}
  - {from: bus, to: c, protocol: kafka}
`)
	fs := findings(t, sys, "unauthenticated-edge", nil)
	availExpect(t, fs, []availWant{
		{"a → b", Warning}, {"a → c", Warning}, {"a → open", Warning}, {"a → openbus", Warning}, {"a → psp", Warning},
	}, "does not authenticate the caller")
	want := map[string]string{
		"a → b":       "edge a → b (http, sync) into service b does not authenticate the caller (auth is not set): b cannot tell who calls it",
		"a → c":       "edge a → c (grpc, sync) into service c does not authenticate the caller (auth: none)",
		"a → open":    "into datastore open does not authenticate the caller (auth: none)",
		"a → openbus": "edge a → openbus (nats, async) into broker openbus does not authenticate the caller (auth: none)",
		"a → psp":     "into external psp does not authenticate the caller (auth is not set)",
	}
	for _, f := range fs {
		subject := strings.Join(f.Subjects, ",")
		if !strings.Contains(f.Message, want[subject]) {
			t.Errorf("%s: message lacks %q:\n%s", subject, want[subject], f.Message)
		}
	}
}

func TestUnauthenticatedEdgeHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: a, datastores: [db]}
  - {name: b}
brokers:
  - {name: bus, kind: kafka}
datastores:
  - {name: db, kind: postgres}
edges:
  - {from: a, to: b, protocol: http, auth: mtls}
  - {from: a, to: bus, protocol: kafka}
  - {from: bus, to: b, protocol: kafka}
`)
	availExpect(t, findings(t, sys, "unauthenticated-edge", nil), nil)
}

func TestPlaintextSecret(t *testing.T) {
	sys := system(t, `
services:
  - name: order
    secrets:
      - {name: DB_PASSWORD, from: literal}
      - {name: API_TOKEN, from: literal}
      - {name: SIGNING_KEY, from: vault}
  - name: safe
    secrets:
      - {name: DB_PASSWORD, from: secretRef}
datastores:
  - name: db
    kind: postgres
    secrets:
      - {name: POSTGRES_PASSWORD, from: literal}
brokers:
  - name: mq
    kind: rabbitmq
    secrets:
      - {name: RABBITMQ_DEFAULT_PASS, from: literal}
`)
	fs := findings(t, sys, "plaintext-secret", nil)
	availExpect(t, fs, []availWant{{"db", Error}, {"mq", Error}, {"order", Error}}, "in its configuration: ")
	want := map[string]string{
		"order": "service order receives 2 secrets written as literal values in its configuration: DB_PASSWORD, API_TOKEN",
		"db":    "datastore db receives 1 secret written as a literal value in its configuration: POSTGRES_PASSWORD",
		"mq":    "broker mq receives 1 secret written as a literal value in its configuration: RABBITMQ_DEFAULT_PASS",
	}
	for _, f := range fs {
		subject := strings.Join(f.Subjects, ",")
		if !strings.Contains(f.Message, want[subject]) {
			t.Errorf("%s: message lacks %q:\n%s", subject, want[subject], f.Message)
		}
		if subject == "order" {
			// One evidence per literal secret at its own line, then the service.
			ev := f.Evidence
			if len(ev) != 3 || ev[0].Line != 8 || ev[0].What != "secret DB_PASSWORD of order" || ev[1].Line != 9 || ev[2].What != "service order" {
				t.Errorf("order evidence = %+v", ev)
			}
		}
	}
}

func TestPlaintextSecretHealthy(t *testing.T) {
	sys := system(t, `
services:
  - name: order
    secrets:
      - {name: DB_PASSWORD, from: vault}
      - {name: TLS_KEY, from: file}
      - {name: TOKEN, from: env}
`)
	availExpect(t, findings(t, sys, "plaintext-secret", nil), nil)
}

func TestNoEncryptionAtRest(t *testing.T) {
	sys := system(t, `
datastores:
  - {name: plain, kind: postgres, encryptedAtRest: false}
  - {name: undeclared, kind: mysql}
  - {name: sealed, kind: postgres, encryptedAtRest: true}
  - {name: sessions, kind: memcached}
`)
	fs := findings(t, sys, "no-encryption-at-rest", nil)
	availExpect(t, fs, []availWant{{"plain", Warning}, {"undeclared", Info}})
	if !strings.Contains(fs[0].Message, "datastore plain (postgres) stores its data unencrypted at rest (encryptedAtRest: false)") {
		t.Errorf("plain: %s", fs[0].Message)
	}
	if !strings.Contains(fs[1].Message, "datastore undeclared (mysql) does not declare whether its data is encrypted at rest (encryptedAtRest not declared)") {
		t.Errorf("undeclared: %s", fs[1].Message)
	}
}

func TestNoEncryptionAtRestHealthy(t *testing.T) {
	sys := system(t, `
datastores:
  - {name: sealed, kind: postgres, encryptedAtRest: true}
`)
	availExpect(t, findings(t, sys, "no-encryption-at-rest", nil), nil)
}

// TestSecurityOnLegacyShop: legacy-shop.yaml's plaintext secrets, its unencrypted and
// unauthenticated edges (the IP-addressed supplier worst), and its databases' encryption.
func TestSecurityOnLegacyShop(t *testing.T) {
	byRule := availReview(t, "../examples/models/legacy-shop.yaml")
	availExpect(t, byRule["plaintext-secret"], []availWant{{"inventory", Error}, {"order", Error}, {"payment", Error}})
	if !strings.Contains(byRule["plaintext-secret"][2].Message, "PSP_SECRET_KEY") {
		t.Errorf("payment: %s", byRule["plaintext-secret"][2].Message)
	}
	availExpect(t, byRule["unencrypted-edge"], []availWant{
		{"warehouse → supplier", Error},
		{"bus → warehouse", Warning}, {"inventory → order", Warning}, {"inventory → shopdb", Warning},
		{"inventory → warehouse", Warning}, {"order → bus", Warning}, {"order → payment", Warning},
		{"order → pricing", Warning}, {"order → shopdb", Warning}, {"payment → paymentdb", Warning},
		{"payment → shopdb", Warning}, {"pricing → inventory", Warning}, {"user → shopdb", Warning},
		{"web → order", Warning}, {"web → session", Warning}, {"web → user", Warning},
	})
	availExpect(t, byRule["unauthenticated-edge"], []availWant{
		{"inventory → order", Warning}, {"inventory → warehouse", Warning}, {"order → payment", Warning},
		{"order → pricing", Warning}, {"pricing → inventory", Warning}, {"warehouse → supplier", Warning},
		{"web → order", Warning}, {"web → session", Warning}, {"web → user", Warning},
	}, "auth is not set")
	availExpect(t, byRule["no-encryption-at-rest"], []availWant{{"paymentdb", Warning}, {"shopdb", Info}})
}
