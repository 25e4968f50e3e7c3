package review

// The api family: the seed's "Document APIs and Architecture" (OpenAPI/AsyncAPI) and the API Design
// part of its Code Review Checklist ("Are APIs well-defined, consistent, and versioned?").
//
// Which services need which contract:
//
//   - a sync API (OpenAPI or gRPC) for a service of role service (or no role), gateway, bff or
//     frontend that another service calls synchronously, or that serves an entrypoint. When the
//     model declares no entrypoints, a service nobody calls counts as serving one (the review's
//     effective entrypoints) unless it only receives messages from a broker: that is a consumer,
//     whatever its role says. Workers and sidecars serve no sync API of their own.
//   - an AsyncAPI document for any service but a sidecar that publishes to a broker (an async edge
//     to a broker): the events are its contract with consumers it does not know.
//
// Like the observability family, a contract or version the model does not declare is reported
// once per rule and cause, listing every service concerned (see observability.go), because the
// importers never fill in api and an import of 20 services would otherwise give 20 findings each.

import (
	"strings"

	"github.com/faultline-dev/faultline/model"
)

func init() {
	register(&Rule{
		ID: "missing-api-contract", Area: API, Severity: Warning,
		Title: "Service API has no declared contract",
		Rationale: "A service called by others without an OpenAPI or gRPC contract has an API that exists only in " +
			"its code: callers guess it, nothing checks a change against them, and the documentation drifts. Events " +
			"published without an AsyncAPI document are the same contract, with consumers the publisher does not know.",
		Fix: "Write the contract the callers rely on and keep it in the repository, checked in CI against the " +
			"implementation: api.openapi (HTTP) or api.grpc (.proto) for calls, api.asyncapi for published events " +
			"(faultline contract validates live traffic against them).",
		Check: checkMissingAPIContract,
	})
	register(&Rule{
		ID: "unversioned-api", Area: API, Severity: Warning,
		Title: "API contract has no version",
		Rationale: "A contract without a version gives clients nothing to pin: a breaking change reaches all of them " +
			"at once, with no old version kept running while they move.",
		Fix: "Version the API clients address (/v1/ in HTTP routes, a package such as inventory.v1 in gRPC, the " +
			"version in event names or AsyncAPI info), keep the old version until its callers have moved, and " +
			"declare it: api.version: v1.",
		Check: checkUnversionedAPI,
	})
}

// apiSyncRole reports whether a service's role serves requests: service (or no role), gateway, bff
// or frontend.
func apiSyncRole(role string) bool {
	switch role {
	case "", "service", "gateway", "bff", "frontend":
		return true
	}
	return false
}

// apiSyncExposure says why a service must publish a sync contract ("called synchronously by web,
// order"; "serves entrypoint checkout"), or "" when it serves no sync API.
func apiSyncExposure(c *Context, s model.Service, entries map[string][]string) string {
	if !apiSyncRole(s.Role) {
		return ""
	}
	var callers []string
	seen := map[string]bool{}
	asyncIn := false
	for _, e := range c.Graph.Callers(s.Name) {
		if !e.IsSync() {
			asyncIn = true
			continue
		}
		if e.From == s.Name || seen[e.From] {
			continue
		}
		if comp, ok := c.Graph.Component(e.From); ok && comp.Kind == model.KindService {
			seen[e.From] = true
			callers = append(callers, e.From)
		}
	}
	var why []string
	if len(callers) > 0 {
		why = append(why, "called synchronously by "+obsNames(callers))
	}
	if eps := entries[s.Name]; len(eps) > 0 {
		if len(c.Sys.Entrypoints) > 0 {
			why = append(why, "serves entrypoint "+strings.Join(eps, ", "))
		} else if len(callers) == 0 && ((s.Role != "" && s.Role != "service") || !asyncIn) {
			why = append(why, "called by no service, so it takes requests from outside (no entrypoints declared)")
		}
	}
	return strings.Join(why, "; ")
}

// apiPublishes lists the brokers a service publishes to over async edges, with the topics when the
// edge names them ("bus (order.created)").
func apiPublishes(c *Context, name string) []string {
	var out []string
	for _, e := range c.Graph.Callees(name) {
		if e.IsSync() {
			continue
		}
		if comp, ok := c.Graph.Component(e.To); !ok || comp.Kind != model.KindBroker {
			continue
		}
		b := e.To
		if len(e.Topics) > 0 {
			b += " (" + strings.Join(e.Topics, ", ") + ")"
		}
		out = append(out, b)
	}
	return out
}

// checkMissingAPIContract reports, as one warning, the services that serve a sync API with no
// OpenAPI or gRPC contract and, as one info finding, the services that publish to a broker with no
// AsyncAPI document.
func checkMissingAPIContract(c *Context) []Finding {
	entries := map[string][]string{}
	for _, ep := range c.Entrypoints {
		entries[ep.Service] = append(entries[ep.Service], ep.Name)
	}
	var syncGap, asyncGap obsGroup
	for _, s := range c.Sys.Services {
		if s.Role == "sidecar" {
			continue
		}
		api := model.API{}
		if s.API != nil {
			api = *s.API
		}
		if api.OpenAPI == "" && api.GRPC == "" {
			if why := apiSyncExposure(c, s, entries); why != "" {
				syncGap.add(s, why+"; no api.openapi or api.grpc")
			}
		}
		if api.AsyncAPI == "" {
			if pubs := apiPublishes(c, s.Name); len(pubs) > 0 {
				asyncGap.add(s, "publishes to "+strings.Join(pubs, ", ")+"; no api.asyncapi")
			}
		}
	}
	var out []Finding
	out = append(out, syncGap.finding(c,
		"%s %s requests from other services or clients but %s no OpenAPI or gRPC contract (api.openapi and api.grpc absent): callers rely on an API that exists only in code, and no change is checked against them",
		obsVerb(syncGap.names, "serves", "serve"), obsVerb(syncGap.names, "declares", "declare"))...)
	for _, f := range asyncGap.finding(c,
		"%s %s events to a broker but %s no AsyncAPI document (api.asyncapi absent): consumers learn the event format from the publisher's code",
		obsVerb(asyncGap.names, "publishes", "publish"), obsVerb(asyncGap.names, "declares", "declare")) {
		f.Severity = Info
		out = append(out, f)
	}
	return out
}

// checkUnversionedAPI reports, as one finding, the services that declare a contract (OpenAPI, gRPC
// or AsyncAPI) but no api.version.
func checkUnversionedAPI(c *Context) []Finding {
	var gap obsGroup
	for _, s := range c.Sys.Services {
		if s.API == nil || strings.TrimSpace(s.API.Version) != "" {
			continue
		}
		var contracts []string
		for _, k := range []struct{ kind, path string }{{"openapi", s.API.OpenAPI}, {"grpc", s.API.GRPC}, {"asyncapi", s.API.AsyncAPI}} {
			if k.path != "" {
				contracts = append(contracts, k.kind+" "+k.path)
			}
		}
		if len(contracts) > 0 {
			gap.add(s, strings.Join(contracts, ", ")+"; api.version absent")
		}
	}
	return gap.finding(c,
		"%s %s a contract but no version (api.version absent): clients cannot pin one, so a breaking change reaches all of them at once with no old version to stay on",
		obsVerb(gap.names, "declares", "declare"))
}
