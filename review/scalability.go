package review

import (
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model/hostref"
)

// The scalability family: what stops a service from scaling out by adding replicas, or from
// moving when the addresses under it change (the seed's checklist: "Are services stateless where
// possible?", "Is there a clear strategy for horizontal scaling of services and data stores?").

func init() {
	register(&Rule{
		ID:       "stateful-service-scaled",
		Area:     Scalability,
		Severity: Warning,
		Title:    "A stateful service runs several replicas with no partitioning declared",
		Rationale: "Seed §6 (Scalability): are services stateless where possible, and is there a clear " +
			"strategy for horizontal scaling? Replicas of a stateful service each hold their own state; " +
			"unless requests are routed by key to the replica that owns it, they see different data, and " +
			"adding replicas makes that worse.",
		Fix: "Move the state out of the process (a datastore or cache shared by the replicas) and mark the " +
			"service stateless: true; or partition it by key (sharding with key-based routing, a " +
			"StatefulSet with stable identities) and declare partitioned: true.",
		Check: checkStatefulServiceScaled,
	})
	register(&Rule{
		ID:       "hard-coded-endpoint",
		Area:     Scalability,
		Severity: Warning,
		Title:    "A dependency is addressed by an IP literal",
		Rationale: "Seed §3 (Design Patterns): service discovery, dynamically locating and communicating with " +
			"services. An IP written in configuration breaks when the target moves, scales out or fails " +
			"over, and bypasses the load balancing and discovery names give (Hard-Coded Endpoints, Taibi & " +
			"Lenarduzzi 2018).",
		Fix: "Address the dependency by a name that discovery resolves (a DNS name, a Kubernetes Service, a " +
			"service-registry entry) and keep the value in configuration that differs per environment.",
		Check: checkHardCodedEndpoint,
	})
}

// checkStatefulServiceScaled reports services that say stateless: false, run more than one
// replica and do not declare partitioned: true. An absent stateless field is unknown and gives no
// finding: the model does not guess whether a service keeps state.
func checkStatefulServiceScaled(c *Context) []Finding {
	var out []Finding
	for _, s := range c.Sys.Services {
		if s.Stateless == nil || *s.Stateless || s.Replicas < 2 || s.Partitioned {
			continue
		}
		out = append(out, c.Finding([]string{s.Name}, []Evidence{c.ComponentEvidence(s.Name)},
			"service %s is stateful (stateless: false) and runs %d replicas with no partitioning declared: each replica keeps its own state, so a request routed to another of the %d misses it",
			s.Name, s.Replicas, s.Replicas))
	}
	return out
}

// scalIPLiteral returns the first IP literal (not loopback or unspecified) in a configuration value:
// a bare address, host:port, [v6]:port, a URL, a DSN or a list of them, as model/hostref reads
// them for the importers.
func scalIPLiteral(value string) (string, bool) {
	v := strings.TrimSpace(value)
	if v == "" {
		return "", false
	}
	usable := func(host string) bool {
		ip := net.ParseIP(host)
		return ip != nil && !ip.IsLoopback() && !ip.IsUnspecified()
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	if usable(bare) {
		return bare, true
	}
	if h, _, err := net.SplitHostPort(v); err == nil && usable(h) {
		return h, true
	}
	if u, err := url.Parse(v); err == nil && u.Host != "" && !strings.ContainsAny(u.Host, ",;") {
		// A plain URL: its host decides, without the slower scan for DSNs and lists below.
		if h := u.Hostname(); usable(h) {
			return h, true
		}
		return "", false
	}
	for _, r := range hostref.Find("ADDRESS", v) {
		if r.IP && usable(r.Host) {
			return r.Host, true
		}
	}
	return "", false
}

// checkHardCodedEndpoint reports every edge whose address contains an IP literal, or whose target
// is an external whose host is one; loopback and unspecified addresses (127.0.0.1, ::1, 0.0.0.0)
// are not endpoints of another component and are left out. An external with an IP host that no
// edge reaches is reported on its own (subject: the external). Absent addresses and hosts give no
// finding.
func checkHardCodedEndpoint(c *Context) []Finding {
	externalIP := map[string]string{}
	hosts := map[string]string{}
	for _, x := range c.Sys.Externals {
		if ip, ok := scalIPLiteral(x.Host); ok {
			externalIP[x.Name] = ip
			hosts[x.Name] = x.Host
		}
	}
	reached := map[string]bool{}
	var out []Finding
	for _, e := range c.Sys.Edges {
		addrIP, inAddr := scalIPLiteral(e.Address)
		hostIP, inHost := externalIP[e.To]
		if inHost {
			reached[e.To] = true
		}
		if !inAddr && !inHost {
			continue
		}
		ev := []Evidence{EdgeEvidence(e)}
		var msg string
		switch {
		case inAddr && inHost:
			msg = "edge %s calls %s at the IP literal %s (address %s; external %s has host %s): it breaks when the target moves, scales out or fails over"
			out = append(out, c.Finding([]string{e.String()}, append(ev, c.ComponentEvidence(e.To)), msg, e.String(), e.To, addrIP, e.Address, e.To, hosts[e.To]))
		case inAddr:
			msg = "edge %s calls %s at the IP literal %s (address %s): it breaks when the target moves, scales out or fails over"
			out = append(out, c.Finding([]string{e.String()}, ev, msg, e.String(), e.To, addrIP, e.Address))
		default:
			msg = "edge %s calls external %s at the IP literal %s (its host): it breaks when the target moves, scales out or fails over"
			out = append(out, c.Finding([]string{e.String()}, append(ev, c.ComponentEvidence(e.To)), msg, e.String(), e.To, hostIP))
		}
	}
	var lone []string
	for name := range externalIP {
		if !reached[name] {
			lone = append(lone, name)
		}
	}
	sort.Strings(lone)
	for _, name := range lone {
		out = append(out, c.Finding([]string{name}, []Evidence{c.ComponentEvidence(name)},
			"external %s is addressed by the IP literal %s: it breaks when the target moves, scales out or fails over",
			name, hosts[name]))
	}
	return out
}
