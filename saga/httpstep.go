package saga

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HeaderIdempotencyKey carries Request.Key().String() on an HTTP step's POST, for proxies and
// servers that deduplicate by it (the participant's barrier keys on the body's fields).
const HeaderIdempotencyKey = "Idempotency-Key"

// maxReplyBody bounds how much of an HTTP step's response is read.
const maxReplyBody = 1 << 20

// HTTP invokes a step by POSTing its Request as JSON to endpoint (with the Idempotency-Key
// header), for a Participant's HTTPHandler or any server that speaks the same protocol. It is a
// Func step: it runs under the step's Timeout and Policy, and honours the context. The response
// decides the outcome:
//
//   - 2xx with a Reply body: a succeeded reply returns its Output; a failed one is a business
//     refusal (an error made with Fail, carrying the reply's Error);
//   - 429, 5xx, a 2xx whose body is not a Reply for this request, network errors and the end of
//     the context: transient errors, which the orchestrator retries (a 429's or 503's
//     Retry-After is reported through resilience.RetryAfterError);
//   - any other 4xx (409 Conflict, 422 Unprocessable Content, …): a refusal, carrying the
//     body's text (a problem+json body's detail).
//
// A nil client means http.DefaultClient. An endpoint that is not an absolute http or https URL
// makes every invocation fail with a refusal, as no retry can fix it.
func HTTP(client *http.Client, endpoint string) Invoker {
	if client == nil {
		client = http.DefaultClient
	}
	u, err := url.Parse(endpoint)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = errors.New("want an absolute http or https URL")
	}
	if err != nil {
		bad := Fail(fmt.Errorf("saga: HTTP step: endpoint %q: %w", endpoint, err))
		return Func(func(context.Context, *Request) (json.RawMessage, error) { return nil, bad })
	}
	return Func(func(ctx context.Context, req *Request) (json.RawMessage, error) {
		return invokeHTTP(ctx, client, endpoint, req)
	})
}

func invokeHTTP(ctx context.Context, client *http.Client, endpoint string, req *Request) (json.RawMessage, error) {
	k := req.Key()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, Fail(fmt.Errorf("saga: HTTP step %s: encode request: %w", k, err))
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, Fail(fmt.Errorf("saga: HTTP step %s: %w", k, err))
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set(HeaderIdempotencyKey, k.String())
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("saga: HTTP step %s: %w", k, err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	where := fmt.Sprintf("saga: HTTP step %s: POST %s: %s", k, endpoint, resp.Status)
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		if rerr != nil {
			return nil, fmt.Errorf("%s: read reply: %w", where, rerr)
		}
		if len(data) > maxReplyBody {
			return nil, fmt.Errorf("%s: reply larger than %d bytes", where, maxReplyBody)
		}
		// The action may have been applied: anything but a proper reply leaves the outcome
		// unknown, and the orchestrator retries until it learns it.
		rep, err := DecodeReply(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if rep.SagaID != req.SagaID || rep.Step != req.Step || rep.Op != req.Op {
			return nil, fmt.Errorf("%s: the reply is for %s, not %s", where, Key{SagaID: rep.SagaID, Step: rep.Step, Op: rep.Op}, k)
		}
		if rep.Status == ReplyFailed {
			msg := rep.Error
			if msg == "" {
				msg = "refused"
			}
			return nil, Fail(errors.New(msg))
		}
		return rep.Output, nil
	case code == http.StatusTooManyRequests || code >= 500:
		return nil, &httpStepError{msg: where + bodyExcerpt(data), retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	case code >= 400:
		return nil, Fail(errors.New(where + bodyExcerpt(data)))
	default: // 1xx, or a 3xx the client did not follow
		return nil, fmt.Errorf("%s: unexpected status", where)
	}
}

// httpStepError is a transient HTTP answer, with the server's Retry-After.
type httpStepError struct {
	msg        string
	retryAfter time.Duration
}

func (e *httpStepError) Error() string { return e.msg }

// RetryAfter implements resilience.RetryAfterError: the Retry-After header's delay, or 0.
func (e *httpStepError) RetryAfter() time.Duration { return e.retryAfter }

// retryAfter parses a Retry-After header's delay in seconds (an HTTP date counts as none).
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// bodyExcerpt renders an error response's body for an error message: a problem+json body's
// detail (or title), otherwise the text, cut at 512 bytes.
func bodyExcerpt(data []byte) string {
	var prob struct{ Title, Detail string }
	text := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &prob) == nil && (prob.Detail != "" || prob.Title != "") {
		text = prob.Detail
		if text == "" {
			text = prob.Title
		}
	}
	if text == "" {
		return ""
	}
	if len(text) > 512 {
		text = text[:512] + "…"
	}
	return ": " + text
}

// HTTPHandler returns the http.Handler that serves the steps registered with Handle to HTTP
// steps (see HTTP). It accepts a POST whose body (at most ParticipantConfig.HTTPMaxBody bytes) is
// a Request, runs the step's handler through the barrier in a transaction of its own, and answers:
//
//   - 200 with the Reply as JSON, for a succeeded and for a refused operation alike (and for a
//     duplicate, the stored outcome);
//   - 503 (Retry-After: 1) when the handler or the database failed transiently: nothing was
//     recorded and the orchestrator retries;
//   - 400 for a body that is not a valid Request (the detail names the field) or whose
//     Idempotency-Key header does not match it, 404 for a step not registered, 405 for a method
//     other than POST, 413 for a body too large; these as RFC 9457 problem+json.
func (p *Participant) HTTPHandler() http.Handler {
	return http.HandlerFunc(p.serveHTTP)
}

func (p *Participant) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s: a saga step is invoked with POST", r.Method))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes", tooBig.Limit))
			return
		}
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("read the request body: %v", err))
		return
	}
	req, err := DecodeRequest(data)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	if ik := r.Header.Get(HeaderIdempotencyKey); ik != "" && ik != req.Key().String() {
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("header %s is %q but the body's key is %q", HeaderIdempotencyKey, ik, req.Key().String()))
		return
	}
	fn, err := p.handlerFor(req)
	if err != nil {
		writeProblem(w, http.StatusNotFound, err.Error())
		return
	}
	rep, err := p.barrier.Run(r.Context(), req, fn)
	if err != nil {
		p.log.Info("saga participant: HTTP step failed, to be retried", "key", req.Key().String(), "attempt", req.Attempt, "err", err)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, fmt.Sprintf("%s attempt %d failed transiently and left nothing behind; retry: %v", req.Key(), req.Attempt, err))
		return
	}
	body, err := json.Marshal(rep)
	if err != nil { // cannot happen: the barrier checked the output
		writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("encode reply: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeProblem answers with an RFC 9457 problem details object.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
