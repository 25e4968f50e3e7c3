// Package httpx adapts faultline's resilience policies to net/http: Transport is an
// http.RoundTripper that rate-limits, retries, breaks circuits per host, isolates with a bulkhead
// and bounds each attempt's wait for headers; Middleware guards an http.Handler with a rate
// limiter, an adaptive concurrency limiter and a bulkhead, answering rejections with RFC 9457
// problem details.
//
// Both adapters keep the policies' guarantees: the caller's context ends everything at once with
// the caller's error and leaves no goroutine behind. The Transport never cancels the context of a
// response it returns, so its body stays readable after RoundTrip returns, whatever timeouts are
// configured (unlike failsafe-go's failsafehttp, issue #123). See docs/resilience/http.md.
package httpx
