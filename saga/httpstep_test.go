package saga

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/resilience"
)

// callHTTP invokes an HTTP step as the orchestrator does (it is a Func step).
func callHTTP(t testing.TB, inv Invoker, ctx context.Context, req *Request) (json.RawMessage, error) {
	t.Helper()
	fi, ok := inv.(funcInvoker)
	if !ok {
		t.Fatalf("HTTP returned %T, want a Func invoker", inv)
	}
	return fi.fn(ctx, req)
}

func retryAfterOf(err error) time.Duration {
	var ra resilience.RetryAfterError
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return -1
}

// The HTTP invoker against a Participant's HTTPHandler: the barrier's guarantees over HTTP, and
// each outcome mapped to what the orchestrator expects (output, refusal, transient error).
func TestHTTPStepAgainstParticipantHandler(t *testing.T) {
	f := newPartFixture(t, openBarSQLite(t))
	srv := httptest.NewServer(f.p.HTTPHandler())
	t.Cleanup(srv.Close)
	inv := HTTP(srv.Client(), srv.URL+"/saga/stock")
	ctx := context.Background()

	for _, attempt := range []int{1, 2} {
		out, err := callHTTP(t, inv, ctx, partReq("s1", "reserve", OpAction, attempt, 2))
		if err != nil || string(out) != `{"reservation":"r-s1"}` {
			t.Fatalf("attempt %d: %s, %v; want the reservation", attempt, out, err)
		}
	}
	if n := f.actions.Load(); n != 1 {
		t.Errorf("action ran %d times over HTTP, want 1", n)
	}
	if _, err := callHTTP(t, inv, ctx, partReq("s1", "reserve", OpCompensate, 1, 2)); err != nil {
		t.Fatalf("compensate: %v", err)
	}
	if got := f.eventCounts(t, "s1"); got["reserved"] != 1 || got["released"] != 1 {
		t.Errorf("events %v, want reserved and released once", got)
	}

	_, err := callHTTP(t, inv, ctx, partReq("s2", "reserve", OpAction, 1, 50))
	if !IsFailure(err) || err.Error() != "out of stock: 50 requested" {
		t.Errorf("refused action: %v (failure %v), want the participant's refusal", err, IsFailure(err))
	}

	if _, err := callHTTP(t, inv, ctx, partReq("s3", "reserve", OpCompensate, 1, 2)); err != nil {
		t.Fatalf("null compensation: %v", err)
	}
	_, err = callHTTP(t, inv, ctx, partReq("s3", "reserve", OpAction, 1, 2))
	if !IsFailure(err) || !strings.Contains(err.Error(), "compensated before the action arrived") {
		t.Errorf("hanging action: %v, want a refusal", err)
	}

	f.flaky.Store(1)
	req := partReq("s4", "reserve", OpAction, 1, 1)
	_, err = callHTTP(t, inv, ctx, req)
	if err == nil || IsFailure(err) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), errPartFlaky.Error()) {
		t.Fatalf("transient failure: %v, want a retryable 503 naming the cause", err)
	}
	if d := retryAfterOf(err); d != time.Second {
		t.Errorf("RetryAfter %v, want 1s from the 503", d)
	}
	if _, ok, _ := f.p.Barrier().Lookup(ctx, req.Key()); ok {
		t.Errorf("a transient failure was recorded")
	}
	req.Attempt = 2
	if _, err := callHTTP(t, inv, ctx, req); err != nil {
		t.Fatalf("retry after the transient failure: %v", err)
	}
}

// How the invoker classifies what a server answers, and what it sends.
func TestHTTPInvokerClassifiesResponses(t *testing.T) {
	req := partReq("s1", "reserve", OpAction, 3, 2)
	replyJSON := func(r Reply) string {
		b, _ := json.Marshal(r)
		return string(b)
	}
	ok := Reply{SagaID: "s1", Step: "reserve", Op: OpAction, Attempt: 3, Status: ReplySucceeded, Output: json.RawMessage(`{"id":7}`)}
	refused := ok
	refused.Status, refused.Error, refused.Output = ReplyFailed, "card declined", nil
	other := ok
	other.Step = "charge"
	cases := []struct {
		name      string
		status    int
		header    http.Header
		body      string
		wantOut   string
		wantFail  bool   // a refusal
		wantErr   string // "" for success
		wantRetry time.Duration
	}{
		{"succeeded", 200, nil, replyJSON(ok), `{"id":7}`, false, "", -1},
		{"refused reply", 200, nil, replyJSON(refused), "", true, "card declined", -1},
		{"2xx not a reply", 200, nil, `<html>hello</html>`, "", false, "saga reply", -1},
		{"2xx reply for another step", 201, nil, replyJSON(other), "", false, "the reply is for s1/charge/action", -1},
		{"2xx invalid reply", 200, nil, `{"sagaId":"s1","step":"reserve","op":"action","attempt":3,"status":"maybe"}`, "", false, "field status", -1},
		{"409", 409, nil, "reservation exists with other items", "", true, "409 Conflict: reservation exists with other items", -1},
		{"422 problem", 422, http.Header{"Content-Type": {"application/problem+json"}}, `{"type":"about:blank","title":"Unprocessable","detail":"qty must be positive"}`, "", true, "422 Unprocessable Entity: qty must be positive", -1},
		{"400", 400, nil, "", "", true, "400 Bad Request", -1},
		{"404", 404, nil, "no such route", "", true, "404 Not Found: no such route", -1},
		{"429", 429, http.Header{"Retry-After": {"7"}}, "slow down", "", false, "429 Too Many Requests: slow down", 7 * time.Second},
		{"500", 500, nil, "panic: nil map", "", false, "500 Internal Server Error: panic: nil map", 0},
		{"503 with date", 503, http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}}, "", "", false, "503 Service Unavailable", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				seen *http.Request
				body []byte
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				seen, body = r, b
				mu.Unlock()
				for k, v := range c.header {
					w.Header()[k] = v
				}
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			out, err := callHTTP(t, HTTP(srv.Client(), srv.URL), context.Background(), req)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v, want output %s", err, c.wantOut)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
			if IsFailure(err) != c.wantFail {
				t.Errorf("IsFailure(%v) = %v, want %v", err, IsFailure(err), c.wantFail)
			}
			if string(out) != c.wantOut {
				t.Errorf("output %s, want %s", out, c.wantOut)
			}
			if err != nil && !c.wantFail {
				if d := retryAfterOf(err); d != c.wantRetry {
					t.Errorf("RetryAfter %v, want %v", d, c.wantRetry)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if seen.Method != http.MethodPost || seen.Header.Get("Content-Type") != "application/json" {
				t.Errorf("sent %s with Content-Type %q, want a JSON POST", seen.Method, seen.Header.Get("Content-Type"))
			}
			if got := seen.Header.Get(HeaderIdempotencyKey); got != "s1/reserve/action" {
				t.Errorf("Idempotency-Key %q, want s1/reserve/action", got)
			}
			sent, err := DecodeRequest(body)
			if err != nil || sent.Key() != req.Key() || sent.Attempt != 3 || !bytes.Equal(sent.Input, req.Input) {
				t.Errorf("sent body %s (%v), want the request", body, err)
			}
		})
	}
}

func TestHTTPInvokerHonoursContext(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for the handler

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := callHTTP(t, HTTP(srv.Client(), srv.URL), ctx, partReq("s1", "reserve", OpAction, 1, 1))
		done <- err
	}()
	<-arrived
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || IsFailure(err) {
		t.Fatalf("error %v, want context.Canceled, retryable", err)
	}
}

func TestHTTPInvokerNetworkErrorIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := callHTTP(t, HTTP(nil, url), context.Background(), partReq("s1", "reserve", OpAction, 1, 1))
	if err == nil || IsFailure(err) || !strings.Contains(err.Error(), "s1/reserve/action") {
		t.Fatalf("error %v, want a retryable error naming the step", err)
	}
}

func TestHTTPInvokerBadEndpointRefuses(t *testing.T) {
	for _, endpoint := range []string{"", "stock.internal/saga", "ftp://stock.internal/saga", "http://", "http://[::1"} {
		_, err := callHTTP(t, HTTP(nil, endpoint), context.Background(), partReq("s1", "reserve", OpAction, 1, 1))
		if !IsFailure(err) || !strings.Contains(err.Error(), "endpoint") {
			t.Errorf("endpoint %q: %v, want a refusal naming the endpoint", endpoint, err)
		}
	}
}

// Bad requests get a problem+json answer that says what is wrong, and touch nothing.
func TestHTTPHandlerRejectsBadRequests(t *testing.T) {
	f := newPartFixture(t, openBarSQLite(t))
	h := f.p.HTTPHandler()
	valid := `{"sagaId":"s1","saga":"order","step":"reserve","op":"action","attempt":1,"input":{"qty":1}}`
	cases := []struct {
		name   string
		method string
		body   string
		header http.Header
		status int
		detail []string
	}{
		{"GET", http.MethodGet, "", nil, 405, []string{"method GET", "POST"}},
		{"broken JSON", http.MethodPost, `{"sagaId":`, nil, 400, []string{"saga request"}},
		{"wrong type", http.MethodPost, `{"sagaId":5,"step":"reserve","op":"action","attempt":1}`, nil, 400, []string{"sagaId"}},
		{"missing step", http.MethodPost, `{"sagaId":"s1","op":"action","attempt":1}`, nil, 400, []string{"field step is empty"}},
		{"zero attempt", http.MethodPost, `{"sagaId":"s1","step":"reserve","op":"action"}`, nil, 400, []string{"field attempt is 0"}},
		{"bad op", http.MethodPost, `{"sagaId":"s1","step":"reserve","op":"redo","attempt":1}`, nil, 400, []string{`field op is "redo"`}},
		{"too large", http.MethodPost, `{"sagaId":"s1","input":"` + strings.Repeat("x", DefaultHTTPMaxBody) + `"}`, nil, 413, []string{"exceeds 1048576 bytes"}},
		{"unknown step", http.MethodPost, strings.Replace(valid, `"reserve"`, `"ship"`, 1), nil, 404, []string{`unknown step "ship"`, "notify, reserve"}},
		{"key mismatch", http.MethodPost, valid, http.Header{HeaderIdempotencyKey: {"s2/reserve/action"}}, 400, []string{"Idempotency-Key", "s1/reserve/action"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "/saga/stock", strings.NewReader(c.body))
			for k, v := range c.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, c.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var prob struct {
				Status int
				Detail string
			}
			if err := json.Unmarshal(w.Body.Bytes(), &prob); err != nil || prob.Status != c.status {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			for _, d := range c.detail {
				if !strings.Contains(prob.Detail, d) {
					t.Errorf("detail %q, want it to mention %q", prob.Detail, d)
				}
			}
			if c.status == 405 && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q, want POST", w.Header().Get("Allow"))
			}
		})
	}
	if n := f.actions.Load(); n != 0 {
		t.Errorf("bad requests ran the action %d times", n)
	}
	// The valid request with a matching key goes through.
	r := httptest.NewRequest(http.MethodPost, "/saga/stock", strings.NewReader(valid))
	r.Header.Set(HeaderIdempotencyKey, "s1/reserve/action")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	rep, err := DecodeReply(w.Body.Bytes())
	if w.Code != 200 || err != nil || rep.Status != ReplySucceeded || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("valid request: %d %s (%v)", w.Code, w.Body, err)
	}
}
