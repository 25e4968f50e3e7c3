package review

import (
	"fmt"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

// The security family: the seed's checklist questions "Are authentication and authorization
// mechanisms properly implemented?", "Is data encrypted in transit and at rest?" and "Are secrets
// managed securely?", asked of every edge, secret and datastore in the model.

func init() {
	register(&Rule{
		ID:       "unencrypted-edge",
		Area:     Security,
		Severity: Warning,
		Title:    "An edge is not known to be encrypted in transit",
		Rationale: "Seed §6 (Security): is data encrypted in transit and at rest? Traffic between services, " +
			"to datastores and brokers crosses networks the team does not fully control; without TLS " +
			"anyone on the path reads and alters it. Calls leaving the system to an external cross the " +
			"internet and are the worst case.",
		Fix: "Encrypt the connection (TLS, or mTLS through a service mesh; sslmode=verify-full for " +
			"PostgreSQL, rediss://, amqps://) and declare tls: true on the edge.",
		Check: checkUnencryptedEdge,
	})
	register(&Rule{
		ID:       "unauthenticated-edge",
		Area:     Security,
		Severity: Warning,
		Title:    "A call does not authenticate its caller",
		Rationale: "Seed §6 (Security): are authentication and authorization mechanisms properly implemented? " +
			"A service that accepts calls without knowing who makes them cannot authorize them, so anything " +
			"that reaches its network can use it.",
		Fix: "Authenticate every call (mTLS through a service mesh, signed tokens such as JWT, or API keys " +
			"for externals) and declare it on the edge's auth field.",
		Check: checkUnauthenticatedEdge,
	})
	register(&Rule{
		ID:       "plaintext-secret",
		Area:     Security,
		Severity: Error,
		Title:    "A secret is written as a literal value in configuration",
		Rationale: "Seed §6 (Security): are secrets managed securely (e.g., HashiCorp Vault, AWS Secrets " +
			"Manager)? A literal in a compose file or manifest is in version control, in every copy of the " +
			"repository and in the deployment history, and cannot be rotated without a change there.",
		Fix: "Supply the secret from a secret store (Kubernetes Secret via secretKeyRef, compose secrets, " +
			"Vault, a cloud secrets manager), rotate the value that was committed, and declare the new " +
			"origin (from: secretRef, file or vault).",
		Check: checkPlaintextSecret,
	})
	register(&Rule{
		ID:       "no-encryption-at-rest",
		Area:     Security,
		Severity: Warning,
		Title:    "A datastore's data is not encrypted at rest",
		Rationale: "Seed §4 (Always Recommend): secure by design, with encryption in transit and at rest. " +
			"Unencrypted disks, snapshots and backups expose every record to whoever obtains a copy.",
		Fix: "Enable encryption at rest (encrypted volumes or storage classes, the engine's transparent " +
			"data encryption, the managed service's encryption option) and declare encryptedAtRest: true.",
		Check: checkNoEncryptionAtRest,
	})
}

// secExplicitEdges lists the edges written in the model, so implicit datastore edges (a service's
// datastores list without an edge) can be told apart.
func secExplicitEdges(s *model.System) map[[2]string]bool {
	out := make(map[[2]string]bool, len(s.Edges))
	for _, e := range s.Edges {
		out[[2]string{e.From, e.To}] = true
	}
	return out
}

// secEdgeEvidence points at an edge; an implicit datastore edge points at the service that lists
// the datastore.
func secEdgeEvidence(e model.Edge, explicit map[[2]string]bool) Evidence {
	if explicit[[2]string{e.From, e.To}] {
		return EdgeEvidence(e)
	}
	return At(e.Source, "service "+e.From+" lists datastore "+e.To+" (no edge declared)")
}

// secDescribe names an edge's protocol and mode for a message: "(http, sync)", or "(sync)".
func secDescribe(e model.Edge) string {
	mode := e.Mode
	if mode == "" {
		mode = model.ModeSync
	}
	if e.Protocol == "" {
		return "(" + mode + ")"
	}
	return "(" + e.Protocol + ", " + mode + ")"
}

// checkUnencryptedEdge reports every edge, sync or async, implicit datastore edges included, that
// is not known to be encrypted: tls: false, or tls absent. Absent tls means "not known to be
// encrypted" and is reported the same way, because the healthy design declares tls: true; an edge
// with auth: mtls and no tls field is taken as encrypted, since mutual TLS is TLS. One finding per
// edge; error when the edge goes to an external (it leaves the system's network), else warning.
func checkUnencryptedEdge(c *Context) []Finding {
	explicit := secExplicitEdges(c.Sys)
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if e.TLS != nil && *e.TLS {
			continue
		}
		if e.TLS == nil && strings.EqualFold(e.Auth, "mtls") {
			continue
		}
		why := "tls is not set"
		if e.TLS != nil {
			why = "tls: false"
		}
		if !explicit[[2]string{e.From, e.To}] {
			why = "the service lists the datastore with no edge, so nothing says the connection is encrypted"
		}
		target, _ := c.Graph.Component(e.To)
		if target.Kind == model.KindExternal {
			f := c.Finding([]string{e.String()}, []Evidence{secEdgeEvidence(e, explicit), c.ComponentEvidence(e.To)},
				"edge %s %s leaves the system for external %s unencrypted (%s): whoever is on the path reads and alters it",
				e.String(), secDescribe(e), e.To, why)
			f.Severity = Error
			out = append(out, f)
			continue
		}
		out = append(out, c.Finding([]string{e.String()}, []Evidence{secEdgeEvidence(e, explicit)},
			"edge %s %s to %s %s is not known to be encrypted in transit (%s)",
			e.String(), secDescribe(e), target.Kind, e.To, why))
	}
	return out
}

// checkUnauthenticatedEdge reports sync edges into a service or an external whose auth is absent
// or none (absent: nothing says the caller proves who it is). Edges into datastores and brokers
// are reported only when auth is explicitly none: their credentials usually live in the
// connection string or a secret the model records elsewhere, so absence says little. Async
// deliveries from a broker to a consumer are not calls the consumer authenticates and are left
// out.
func checkUnauthenticatedEdge(c *Context) []Finding {
	explicit := secExplicitEdges(c.Sys)
	var out []Finding
	for _, e := range c.Graph.Edges() {
		target, ok := c.Graph.Component(e.To)
		if !ok {
			continue
		}
		auth := strings.ToLower(strings.TrimSpace(e.Auth))
		none := auth == "none"
		switch target.Kind {
		case model.KindService, model.KindExternal:
			if !e.IsSync() || (auth != "" && !none) {
				continue
			}
		default:
			if !none {
				continue
			}
		}
		why := "auth is not set"
		if none {
			why = "auth: none"
		}
		out = append(out, c.Finding([]string{e.String()}, []Evidence{secEdgeEvidence(e, explicit)},
			"edge %s %s into %s %s does not authenticate the caller (%s): %s cannot tell who calls it, so it cannot authorize the call",
			e.String(), secDescribe(e), target.Kind, e.To, why, e.To))
	}
	return out
}

// checkPlaintextSecret reports each service, datastore and broker that receives secrets with
// from: literal (a value written in the configuration), one finding per component naming every
// such secret variable. Only names are reported; the model never holds secret values.
func checkPlaintextSecret(c *Context) []Finding {
	type holder struct {
		name    string
		kind    model.ComponentKind
		secrets []model.Secret
	}
	var all []holder
	for _, s := range c.Sys.Services {
		all = append(all, holder{s.Name, model.KindService, s.Secrets})
	}
	for _, d := range c.Sys.Datastores {
		all = append(all, holder{d.Name, model.KindDatastore, d.Secrets})
	}
	for _, b := range c.Sys.Brokers {
		all = append(all, holder{b.Name, model.KindBroker, b.Secrets})
	}
	var out []Finding
	for _, h := range all {
		var names []string
		var ev []Evidence
		for _, s := range h.secrets {
			if s.From != "literal" {
				continue
			}
			names = append(names, s.Name)
			if s.Source.Line > 0 {
				ev = append(ev, At(s.Source, "secret "+s.Name+" of "+h.name))
			}
		}
		if len(names) == 0 {
			continue
		}
		ev = append(ev, c.ComponentEvidence(h.name))
		what := "1 secret written as a literal value"
		if len(names) > 1 {
			what = fmt.Sprintf("%d secrets written as literal values", len(names))
		}
		out = append(out, c.Finding([]string{h.name}, ev,
			"%s %s receives %s in its configuration: %s",
			h.kind, h.name, what, strings.Join(names, ", ")))
	}
	return out
}

// checkNoEncryptionAtRest reports datastores with encryptedAtRest: false (warning) and, as info,
// those that do not declare it (absent is unknown: the review asks rather than assumes).
// memcached is left out: it keeps data only in memory and writes nothing to disk.
func checkNoEncryptionAtRest(c *Context) []Finding {
	var out []Finding
	for _, d := range c.Sys.Datastores {
		if availIsPureCache(d.Kind) || (d.EncryptedAtRest != nil && *d.EncryptedAtRest) {
			continue
		}
		kind := ""
		if d.Kind != "" {
			kind = fmt.Sprintf(" (%s)", d.Kind)
		}
		ev := []Evidence{c.ComponentEvidence(d.Name)}
		if d.EncryptedAtRest == nil {
			f := c.Finding([]string{d.Name}, ev,
				"datastore %s%s does not declare whether its data is encrypted at rest (encryptedAtRest not declared)", d.Name, kind)
			f.Severity = Info
			out = append(out, f)
			continue
		}
		out = append(out, c.Finding([]string{d.Name}, ev,
			"datastore %s%s stores its data unencrypted at rest (encryptedAtRest: false): disks, snapshots and backups expose every record", d.Name, kind))
	}
	return out
}
