package compose

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
)

// secrets lists the secrets a workload receives and how, for the security review. Values are
// never copied: only the variable (or secret) name and where it comes from.
//
//   - a variable named like a secret (DB_PASSWORD, API_KEY, GITHUB_TOKEN...) with a value written
//     in the compose file: literal;
//   - the same with a value that is a ${VAR} reference, or a bare NAME passed from the shell: env;
//   - the same set in an env_file, or a *_FILE variable pointing at a file: file;
//   - a URL with user:password@ or ?password= (or another secret-named parameter) in any
//     variable: literal (env when the credential is a reference);
//   - compose secrets: entries: file.
func (im *importer) secrets(w *workload) []model.Secret {
	s := w.cfg
	var out []model.Secret
	seen := map[string]bool{}
	add := func(name, from string, src model.Source) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, model.Secret{Name: name, From: from, Source: src})
	}
	keys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.Environment[k]
		value := ""
		if v != nil {
			value = *v
		}
		entry, inCompose := im.envEntry(w, k)
		class := secretClass(k)
		if class == "" {
			if len(urlCredentials(value)) > 0 {
				from := "literal"
				switch written := urlCredentials(entry.raw); {
				case !inCompose:
					from = "file"
				case len(written) == 0:
					from = "env" // the whole URL comes from a variable
				case !slices.ContainsFunc(written, func(c string) bool { return !hasVarRef(c) }):
					from = "env" // postgres://app:${DB_PASSWORD}@db
				}
				add(k, from, im.envSource(w, k))
			}
			continue
		}
		if class == "file" {
			if value != "" {
				add(k, "file", im.envSource(w, k))
			}
			continue
		}
		switch {
		case !inCompose:
			if value != "" && !notSecretValue(value) {
				add(k, "file", im.envSource(w, k))
			}
		case !entry.inline || hasVarRef(entry.raw):
			add(k, "env", im.envSource(w, k))
		case entry.raw != "" && !notSecretValue(entry.raw):
			add(k, "literal", im.envSource(w, k))
		}
	}
	for _, sec := range s.Secrets {
		add(sec.Source, "file", im.entrySource(w, "secrets", sec.Source, secretNames))
	}
	return out
}

// envEntry finds how a variable is written in the compose files (the last override that sets it).
func (im *importer) envEntry(w *workload, key string) (envEntry, bool) {
	var found envEntry
	_, ok := im.set.find(w.section, w.name, func(svc *yaml.Node) *yaml.Node {
		if e, ok := findEnv(svc, key); ok {
			found = e
			return e.node
		}
		return nil
	})
	return found, ok
}

func secretNames(item *yaml.Node) []string {
	if item == nil {
		return nil
	}
	if item.Kind == yaml.ScalarNode {
		return []string{item.Value}
	}
	if _, src := get(item, "source"); src != nil {
		return []string{src.Value}
	}
	return nil
}

var (
	userinfoRE = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://([^:/@\s]*):([^@/\s]+)@`)
	queryRE    = regexp.MustCompile(`[?&]([A-Za-z_][A-Za-z0-9_.-]*)=([^&\s#"']+)`)
)

// urlCredentials returns the credentials written in URLs in a value: the password of
// user:password@, and query parameters named like secrets (?password=, &access_token=).
func urlCredentials(v string) []string {
	var out []string
	for _, m := range userinfoRE.FindAllStringSubmatch(v, -1) {
		out = append(out, m[2])
	}
	if strings.Contains(v, "://") {
		for _, m := range queryRE.FindAllStringSubmatch(v, -1) {
			if secretClass(m[1]) == "value" || strings.EqualFold(m[1], "pwd") {
				out = append(out, m[2])
			}
		}
	}
	return out
}

// secretWords mark a variable as holding a secret when a part of its name contains them.
var secretWords = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "CREDENTIALS", "CREDENTIAL"}

// secretPairs mark it when two adjacent parts are these.
var secretPairs = [][2]string{{"API", "KEY"}, {"PRIVATE", "KEY"}, {"ACCESS", "KEY"}, {"SECRET", "KEY"}, {"AUTH", "KEY"}, {"ENCRYPTION", "KEY"}, {"SIGNING", "KEY"}}

// notSecretSuffix are last name parts that make a secret-sounding variable a setting about the
// secret (TOKEN_TTL, PASSWORD_MIN_LENGTH, ACCESS_KEY_ID) rather than the secret.
var notSecretSuffix = map[string]bool{
	"URL": true, "URI": true, "ENDPOINT": true, "HOST": true, "PORT": true, "TTL": true, "EXPIRY": true,
	"EXPIRES": true, "EXPIRATION": true, "LIFETIME": true, "TIMEOUT": true, "LENGTH": true, "SIZE": true,
	"ENABLED": true, "ENABLE": true, "DISABLED": true, "NAME": true, "HEADER": true, "TYPE": true,
	"ALGORITHM": true, "ALG": true, "DIR": true, "ID": true, "USER": true, "USERNAME": true, "MIN": true,
	"MAX": true, "COUNT": true, "MODE": true, "POLICY": true, "REQUIRED": true, "VERSION": true,
	"ISSUER": true, "AUDIENCE": true, "PREFIX": true, "FORMAT": true, "STORE": true, "PROVIDER": true,
}

// secretClass says whether a variable name holds a secret value ("value"), the path of a file
// holding one ("file"), or neither ("").
func secretClass(key string) string {
	parts := strings.FieldsFunc(strings.ToUpper(key), func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(parts) == 0 {
		return ""
	}
	last := parts[len(parts)-1]
	body := parts
	isFile := last == "FILE" || last == "PATH"
	if isFile {
		body = parts[:len(parts)-1]
	} else if notSecretSuffix[last] {
		return ""
	}
	secret := false
	for i, p := range body {
		if p == "PASS" || p == "PWD" && i > 0 {
			secret = true
		}
		for _, w := range secretWords {
			if strings.Contains(p, w) {
				secret = true
			}
		}
		if i > 0 {
			for _, pair := range secretPairs {
				if body[i-1] == pair[0] && p == pair[1] {
					secret = true
				}
			}
		}
	}
	switch {
	case !secret:
		return ""
	case isFile:
		return "file"
	}
	return "value"
}

// notSecretValue reports values a secret-named variable holds when it is a switch, not a secret.
func notSecretValue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "true", "false", "yes", "no", "on", "off", "none", "null", "disabled", "enabled":
		return true
	}
	return false
}

// hasVarRef reports whether a value as written uses a variable ($NAME or ${...}).
func hasVarRef(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		if s[i+1] == '$' {
			i++
			continue
		}
		if s[i+1] == '{' || isNameStart(s[i+1]) {
			return true
		}
	}
	return false
}

// observability reads the tracing and metrics exporters a service is configured with from the
// OpenTelemetry, Jaeger and Zipkin variables; nil when none are set.
func observability(env types.MappingWithEquals) *model.Observability {
	o := &model.Observability{}
	guess := ""
	for k, v := range env {
		// A bare NAME (passed from the shell) still says which system the service is set up for.
		key, val := strings.ToUpper(k), ""
		if v != nil {
			val = strings.ToLower(strings.TrimSpace(*v))
		}
		switch {
		case val == "" && (key == "OTEL_TRACES_EXPORTER" || key == "OTEL_METRICS_EXPORTER" || key == "OTEL_SDK_DISABLED"):
		case key == "OTEL_TRACES_EXPORTER":
			switch first := strings.TrimSpace(strings.Split(val, ",")[0]); first {
			case "none":
				o.Tracing = "none"
			case "jaeger", "zipkin":
				o.Tracing = first
			default:
				o.Tracing = "otel"
			}
		case key == "OTEL_METRICS_EXPORTER":
			switch first := strings.TrimSpace(strings.Split(val, ",")[0]); first {
			case "none", "prometheus":
				o.Metrics = first
			default:
				o.Metrics = "otel"
			}
		case key == "OTEL_SDK_DISABLED" && val == "true":
			o.Tracing = "none"
		case strings.HasPrefix(key, "OTEL_EXPORTER_OTLP") && strings.HasSuffix(key, "ENDPOINT") && !strings.Contains(key, "METRICS") && !strings.Contains(key, "LOGS"):
			guess = pick(guess, "otel")
		case jaegerClientKey(key):
			guess = pick(guess, "jaeger")
		case strings.Contains(key, "ZIPKIN") && (strings.HasSuffix(key, "ENDPOINT") || strings.HasSuffix(key, "URL") || strings.HasSuffix(key, "HOST")):
			guess = pick(guess, "zipkin")
		}
	}
	if o.Tracing == "" {
		o.Tracing = guess
	}
	if *o == (model.Observability{}) {
		return nil
	}
	return o
}

// jaegerClientKey reports the variables Jaeger clients read (JAEGER_AGENT_HOST, JAEGER_ENDPOINT,
// JAEGER_SAMPLER_TYPE...) and framework settings that name Jaeger (OPENTRACING_JAEGER_ENABLED),
// but not JAEGER_HOST or JAEGER_UI_PORT, which a proxy in front of the Jaeger UI also has.
func jaegerClientKey(key string) bool {
	if strings.Contains(key, "_JAEGER_") {
		return true
	}
	rest, ok := strings.CutPrefix(key, "JAEGER_")
	if !ok {
		return false
	}
	first, _, _ := strings.Cut(rest, "_")
	switch first {
	case "AGENT", "ENDPOINT", "SAMPLER", "SAMPLE", "SAMPLING", "SERVICE", "REPORTER", "TAGS", "TRACEID", "PROPAGATION", "DISABLED", "AUTH", "COLLECTOR":
		return true
	}
	return false
}

// pick keeps the strongest tracing guess: otel over jaeger over zipkin, whatever the map order.
func pick(cur, next string) string {
	rank := map[string]int{"": 0, "zipkin": 1, "jaeger": 2, "otel": 3}
	if rank[next] > rank[cur] {
		return next
	}
	return cur
}
