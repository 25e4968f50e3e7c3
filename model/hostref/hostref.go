// Package hostref finds references to other hosts in configuration values: URLs, host:port pairs,
// lists of them, database DSNs (libpq key=value, Go MySQL tcp(...), JDBC, MongoDB URIs) and bare
// host names in variables whose name says they hold one (DB_HOST, CART_SERVICE_ADDR...). The
// importers turn the references that name another component into edges.
package hostref

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Ref is one host named in a configuration value.
type Ref struct {
	// Host is the host as written, lower-cased, without brackets for IPv6.
	Host string
	// Port is the port, or 0 when none is written.
	Port int
	// Scheme is the URL scheme when the value is a URL ("postgres", "jdbc:mysql", "https").
	Scheme string
	// TLS is true when the value asks for encryption (https, rediss, amqps, sslmode=require...).
	TLS bool
	// IP is true when Host is an IP address literal.
	IP bool
	// Raw is the part of the value the reference was read from, with any user:password@ removed so
	// credentials never reach a model.
	Raw string
}

var (
	urlRE     = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*(?::[a-zA-Z][a-zA-Z0-9+.-]*)?)://([^\s/?#"'<>;]+)`)
	mysqlRE   = regexp.MustCompile(`@tcp\(([^)\s]+)\)`)
	libpqRE   = regexp.MustCompile(`(?i)(?:^|\s)host=([^\s'"]+)`)
	libpqPort = regexp.MustCompile(`(?i)(?:^|\s)port=(\d+)`)
	hostPort  = regexp.MustCompile(`^([a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?|\[[0-9a-fA-F:.]+\]):(\d{1,5})$`)
	bareHost  = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)
	tlsParams = regexp.MustCompile(`(?i)(sslmode=(require|verify-ca|verify-full)|tls=true|ssl=true|useSSL=true|encrypt=true)`)
	splitter  = regexp.MustCompile(`[\s,;"'=()]+`)
)

// hostKeyParts are the last parts of variable names that hold a host (DB_HOST, KAFKA_BROKERS).
var hostKeyParts = map[string]bool{
	"HOST": true, "HOSTS": true, "HOSTNAME": true, "ADDR": true, "ADDRS": true, "ADDRESS": true,
	"ADDRESSES": true, "SERVER": true, "SERVERS": true, "ENDPOINT": true, "ENDPOINTS": true, "URL": true,
	"URLS": true, "URI": true, "URIS": true, "DSN": true, "BROKER": true, "BROKERS": true, "SERVICE": true,
	"SVC": true, "NODES": true, "SEEDS": true, "POINTS": true, "BOOTSTRAP": true, "UPSTREAM": true,
	"TARGET": true, "REMOTE": true, "BACKEND": true,
}

// KeyHoldsHost reports whether a variable or flag name says its value is a host
// (DB_HOST, --redis-addr, spring.datasource.url).
func KeyHoldsHost(key string) bool {
	k := strings.ToUpper(strings.TrimLeft(key, "-"))
	parts := strings.FieldsFunc(k, func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(parts) == 0 {
		return false
	}
	return hostKeyParts[parts[len(parts)-1]]
}

// Find returns the hosts that a configuration value names. key is the variable or flag name the
// value belongs to ("" for a free-standing argument); a bare word counts as a host only when the key
// says it holds one. Loopback and wildcard addresses are left out: they name no other component.
func Find(key, value string) []Ref {
	value = strings.TrimSpace(value)
	if value == "" || len(value) > 4096 {
		return nil
	}
	var refs []Ref
	tls := tlsParams.MatchString(value)
	covered := make([]bool, len(value))
	mark := func(loc []int) {
		for i := loc[0]; i < loc[1] && i < len(covered); i++ {
			covered[i] = true
		}
	}
	for _, m := range urlRE.FindAllStringSubmatchIndex(value, -1) {
		scheme := strings.ToLower(value[m[2]:m[3]])
		authority := value[m[4]:m[5]]
		end := m[1]
		for end < len(value) && !strings.ContainsRune(" \t\n,;\"'", rune(value[end])) {
			end++
		}
		mark([]int{m[0], end})
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			authority = authority[at+1:]
		}
		for _, hp := range strings.Split(authority, ",") {
			if r, ok := parseHostPort(hp, true); ok {
				r.Scheme = scheme
				r.TLS = tls || secureScheme(scheme)
				r.Raw = stripUserinfo(value[m[0]:end])
				refs = append(refs, r)
			}
		}
	}
	for _, m := range mysqlRE.FindAllStringSubmatchIndex(value, -1) {
		mark(m[:2])
		if r, ok := parseHostPort(value[m[2]:m[3]], true); ok {
			r.Scheme, r.TLS, r.Raw = "mysql", tls, value[m[0]:m[1]]
			refs = append(refs, r)
		}
	}
	if m := libpqRE.FindStringSubmatchIndex(value); m != nil {
		mark(m[:2])
		if r, ok := parseHostPort(value[m[2]:m[3]], true); ok {
			if pm := libpqPort.FindStringSubmatch(value); pm != nil {
				r.Port, _ = strconv.Atoi(pm[1])
			}
			r.Scheme, r.TLS, r.Raw = "postgres", tls, strings.TrimSpace(value[m[0]:m[1]])
			refs = append(refs, r)
		}
	}
	// What is left: host:port tokens, lists of them, and bare hosts for host-holding keys.
	var rest strings.Builder
	for i := range value {
		if covered[i] {
			rest.WriteByte(' ')
		} else {
			rest.WriteByte(value[i])
		}
	}
	tokens := splitter.Split(rest.String(), -1)
	bareOK := KeyHoldsHost(key) && !strings.Contains(value, "=")
	for _, tok := range tokens {
		tok = strings.Trim(tok, "/")
		if tok == "" {
			continue
		}
		if hostPort.MatchString(tok) {
			if r, ok := parseHostPort(tok, false); ok {
				r.TLS, r.Raw = tls, tok
				refs = append(refs, r)
			}
			continue
		}
		if (bareOK || clusterDNS(tok)) && len(tokens) <= 8 && bareHost.MatchString(tok) && !isNumber(tok) && !notAHost[strings.ToLower(tok)] {
			if r, ok := parseHostPort(tok, true); ok {
				r.TLS, r.Raw = tls, tok
				refs = append(refs, r)
			}
		}
	}
	return dedupe(refs)
}

// FindInArgs reads a command line: --flag=value pairs, a flag followed by its value, and
// free-standing host:port or URL arguments (wait-for-it db:5432).
func FindInArgs(args []string) []Ref {
	var refs []Ref
	for i, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			refs = append(refs, Find(k, v)...)
			continue
		}
		key := ""
		if i > 0 && strings.HasPrefix(args[i-1], "-") && !strings.Contains(args[i-1], "=") {
			key = args[i-1]
			if key == "-h" || key == "--host" {
				key = "HOST"
			}
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		refs = append(refs, Find(key, a)...)
	}
	return dedupe(refs)
}

// clusterDNS reports whether a word is a Kubernetes Service DNS name (svc.ns.svc[.cluster.local]),
// a host whatever the variable holding it is called.
func clusterDNS(s string) bool {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	return strings.HasSuffix(s, ".svc.cluster.local") || strings.HasSuffix(s, ".svc") && strings.Count(s, ".") >= 2
}

var secretParam = regexp.MustCompile(`(?i)([?&;](?:password|passwd|pwd|pass|secret|token|api[_-]?key|apikey|access[_-]?key|auth|credentials?|sig|signature)=)[^&;#\s]*`)

// stripUserinfo removes user:password@ from a URL and masks secret-looking query parameters.
func stripUserinfo(u string) string {
	u = secretParam.ReplaceAllString(u, "${1}***")
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return u[:i+3] + rest[at+1:]
	}
	return u
}

// notAHost are words host-holding variables often carry that are not hosts.
var notAHost = map[string]bool{
	"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true, "none": true,
	"null": true, "enabled": true, "disabled": true, "default": true, "auto": true, "local": true,
}

func parseHostPort(s string, allowBare bool) (Ref, bool) {
	s = strings.TrimSpace(s)
	host, portText := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return Ref{}, false
		}
		host = s[1:end]
		portText = strings.TrimPrefix(s[end+1:], ":")
	} else if i := strings.LastIndex(s, ":"); i >= 0 && strings.Count(s, ":") == 1 {
		host, portText = s[:i], s[i+1:]
	} else if strings.Count(s, ":") > 1 {
		if net.ParseIP(s) == nil {
			return Ref{}, false
		}
	}
	if portText == "" && !allowBare {
		return Ref{}, false
	}
	port := 0
	if portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil || p <= 0 || p > 65535 {
			return Ref{}, false
		}
		port = p
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || strings.ContainsAny(host, "$%{}*") {
		return Ref{}, false
	}
	ip := net.ParseIP(host)
	if ip == nil && (isNumber(host) || !bareHost.MatchString(host)) {
		return Ref{}, false
	}
	if host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return Ref{}, false
	}
	return Ref{Host: host, Port: port, IP: ip != nil}, true
}

func isNumber(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return s != ""
}

func secureScheme(s string) bool {
	switch s {
	case "https", "rediss", "amqps", "wss", "grpcs", "mongodb+srv", "tls", "ssl", "mqtts", "nats+tls":
		return true
	}
	return false
}

func dedupe(refs []Ref) []Ref {
	seen := map[string]bool{}
	out := refs[:0]
	for _, r := range refs {
		k := r.Host + ":" + strconv.Itoa(r.Port) + ":" + r.Scheme
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// ProtocolForScheme maps a URL scheme to a model protocol ("" when unknown).
func ProtocolForScheme(scheme string) string {
	s := strings.TrimPrefix(scheme, "jdbc:")
	switch s {
	case "http", "https":
		return "http"
	case "grpc", "grpcs", "dns":
		return "grpc"
	case "postgres", "postgresql", "mysql", "mariadb", "sqlserver", "oracle:thin", "cockroachdb", "pgx":
		return "sql"
	case "redis", "rediss", "redis-sentinel":
		return "redis"
	case "amqp", "amqps":
		return "amqp"
	case "nats", "tls", "nats+tls":
		return "nats"
	case "kafka", "plaintext", "sasl_ssl", "ssl":
		return "kafka"
	case "ws", "wss":
		return "websocket"
	case "mqtt", "mqtts", "tcp+mqtt":
		return "mqtt"
	case "mongodb", "mongodb+srv", "tcp", "cassandra", "memcached", "zk", "zookeeper":
		return "tcp"
	}
	return ""
}
