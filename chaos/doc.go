// Package chaos is faultline's fault-injecting TCP proxy, a drop-in replacement for Shopify's
// Toxiproxy (v2.12.0 API).
//
// A Server holds named proxies. Each Proxy listens on a TCP address (127.0.0.1:0 by default) and
// forwards every accepted connection to its upstream, pumping each direction through a chain of
// toxics: "upstream" is client→server, "downstream" is server→client. The toxics are Toxiproxy's,
// with the same names, attributes, units and defaults: latency, bandwidth, slow_close, timeout,
// reset_peer, slicer, limit_data and noop. Toxics can be added, updated and removed while traffic
// flows; open connections pick up the change. Disabling a proxy stops its listener and closes its
// connections.
//
// Server.Handler serves Toxiproxy's HTTP API (same paths, JSON shapes, status codes and error
// bodies {"error": "...", "status": N}), so Toxiproxy's clients work unchanged, plus GET /events.
//
// What Toxiproxy lacks and this package adds:
//
//   - Reproducibility: one seed (Config.Seed, random and reported by Server.Seed when zero) drives
//     every random decision (toxicity draws, jitter, slicer sizes) through sources derived from
//     (seed, proxy, connection sequence number, toxic name), so the same seed and the same traffic
//     give the same decisions.
//   - A fault log: every decision is recorded as an Event in a bounded in-memory ring, served as
//     JSON at GET /events, so a user can tell which toxic was applied to which connection.
//   - Input validation: negative durations and sizes, and toxicity outside [0, 1], are rejected
//     with 400 instead of being accepted silently.
//
// LoadConfig and Server.ApplyConfig read a startup config file (Toxiproxy's JSON array of
// proxies, where each proxy may also list its toxics) and create everything before any traffic.
//
// Time-based toxics wait on the injected clock.Clock (the wall clock by default). The package logs
// nothing unless Config.Logger is set.
//
// Still to come (later work on the same issue): L7 (HTTP/1.1, HTTP/2, gRPC) faults, packet-loss
// and blackhole toxics, /metrics, experiments with SLO verdicts, the
// `faultline chaos` CLI, and docs/chaos.md.
package chaos
