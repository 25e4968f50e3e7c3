package compose

import (
	"os"
	"slices"
	"testing"
)

func TestLooksLikeCompose(t *testing.T) {
	shop, err := os.ReadFile("testdata/shop/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data string
		want bool
	}{
		{"shop fixture", string(shop), true},
		{"image", "services:\n  web:\n    image: nginx\n", true},
		{"build only", "services:\n  web:\n    build: .\n", true},
		{"merge key", "x-base: &b\n  restart: always\nservices:\n  web:\n    <<: *b\n", true},
		{"override file", "services:\n  web:\n    deploy:\n      replicas: 3\n", true},
		{"faultline model", "apiVersion: faultline/v1\nkind: System\nmetadata: {name: x}\nservices:\n  - name: a\n", false},
		{"kubernetes", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template: {}\n", false},
		{"services with apiVersion", "apiVersion: v1\nservices:\n  web:\n    image: nginx\n", false},
		{"services list", "services:\n  - web\n", false},
		{"no service attributes", "services:\n  web:\n    colour: blue\n", false},
		{"empty services", "services: {}\n", false},
		{"no services", "name: x\n", false},
		{"empty", "", false},
		{"not YAML", "services: [\n", false},
		{"binary", "services:\x00\n", false},
		{"scalar", "hello\n", false},
		{"self-referencing alias", "services: &s\n  web: *s\n", false},
	}
	for _, c := range cases {
		if got := LooksLikeCompose([]byte(c.data)); got != c.want {
			t.Errorf("%s: LooksLikeCompose = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPlainRefs(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"plain", nil},
		{"$A and ${B}", []string{"A", "B"}},
		{"$$A $${B}", nil},
		{"${A:-default}", nil},
		{"${A-x}", nil},
		{"${A:+x}", nil},
		{"${A:?required}", nil},
		{"${A:-${B}}", []string{"B"}},
		{"${A:-$${B}}", nil},
		{"http://${HOST}:${PORT:-80}/", []string{"HOST"}},
		{"${unterminated", nil},
		{"${}", nil},
		{"$1 costs", nil},
		{"trailing $", nil},
	}
	for _, c := range cases {
		if got := plainRefs(c.in, 0); !slices.Equal(got, c.want) {
			t.Errorf("plainRefs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSecretClass(t *testing.T) {
	cases := map[string]string{
		"DB_PASSWORD":              "value",
		"POSTGRES_PASSWORD":        "value",
		"RABBITMQ_DEFAULT_PASS":    "value",
		"MYSQLPASSWORD":            "value",
		"JWT_SECRET":               "value",
		"SECRET_KEY_BASE":          "value",
		"GITHUB_TOKEN":             "value",
		"STRIPE_API_KEY":           "value",
		"OPENAI_APIKEY":            "value",
		"AWS_SECRET_ACCESS_KEY":    "value",
		"AWS_ACCESS_KEY":           "value",
		"SSH_PRIVATE_KEY":          "value",
		"GOOGLE_CREDENTIALS":       "value",
		"db-password":              "value",
		"POSTGRES_PASSWORD_FILE":   "file",
		"TLS_PRIVATE_KEY_PATH":     "file",
		"AWS_ACCESS_KEY_ID":        "",
		"TOKEN_TTL":                "",
		"PASSWORD_MIN_LENGTH":      "",
		"OAUTH_TOKEN_URL":          "",
		"SECRET_NAME":              "",
		"PATH":                     "",
		"PWD":                      "",
		"DB_HOST":                  "",
		"PASSPORT_STRATEGY":        "",
		"KEYCLOAK_REALM":           "",
		"PARTITION_KEY":            "",
		"SPRING_DATASOURCE_URL":    "",
		"OTEL_EXPORTER_OTLP_TOKEN": "value",
	}
	for k, want := range cases {
		if got := secretClass(k); got != want {
			t.Errorf("secretClass(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestRedactUserinfo(t *testing.T) {
	cases := map[string]string{
		"postgres://u:p@db:5432":  "postgres://u:***@db:5432",
		"amqp://guest:guest@mq":   "amqp://guest:***@mq",
		"redis://:secret@cache":   "redis://:***@cache",
		"mongodb://user@db:27017": "mongodb://user@db:27017",
		"http://svc:8080":         "http://svc:8080",
		"db:5432":                 "db:5432",
		"jdbc:postgresql://db:5432/app?user=u&password=p&ssl=true": "jdbc:postgresql://db:5432/app?user=u&password=***&ssl=true",
		"mongodb://u:p@db/x?authSource=admin&pwd=z":                "mongodb://u:***@db/x?authSource=admin&pwd=***",
		"http://api/v1/items?token=abc":                            "http://api/v1/items?token=***",
		"http://user@host/path@x":                                  "http://user@host/path@x",
	}
	for in, want := range cases {
		if got := redactUserinfo(in); got != want {
			t.Errorf("redactUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLooksLikeComposeOverrides(t *testing.T) {
	for _, data := range []string{
		"services:\n  web:\n    mem_limit: 1g\n",
		"services:\n  web:\n    ulimits:\n      nofile: 65536\n",
		"include:\n  - other.yaml\n",
	} {
		if !LooksLikeCompose([]byte(data)) {
			t.Errorf("LooksLikeCompose(%q) = false", data)
		}
	}
	if got := knownAttributes([]string{"services", "web"}); !slices.Contains(got, "image") || !slices.IsSorted(got) {
		t.Errorf("service attributes from the schema = %v", got)
	}
}
