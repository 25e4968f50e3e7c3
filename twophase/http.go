package twophase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The HTTP transport: JSON over POST, one path per message.
//
//	participant:  POST /prepare  {"txID":"t1","ops":[{"key":"alice","delta":-40}]} → {"yes":true}
//	              POST /commit   {"txID":"t1"}                                     → {}
//	              POST /abort    {"txID":"t1"}                                     → {}
//	coordinator:  POST /decision {"txID":"t1"}                                     → {"outcome":"committed"}
//
// Failures answer with a status ≥ 400 and {"error":"...","code":"..."}; the code carries the
// package's sentinel errors (ErrConflict, ErrNotPrepared, ErrClosed, ErrCrashed, ...) across,
// so errors.Is works on the client's side as it does in-process.

// maxHTTPBody bounds a request or response body.
const maxHTTPBody = 1 << 20

type httpRequest struct {
	TxID string `json:"txID"`
	Ops  []Op   `json:"ops,omitempty"`
}

type httpError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

type httpDecision struct {
	Outcome Outcome `json:"outcome"`
}

// errorCodes maps the sentinel errors that cross the wire.
var errorCodes = []struct {
	code   string
	err    error
	status int
}{
	{"conflict", ErrConflict, http.StatusConflict},
	{"not-prepared", ErrNotPrepared, http.StatusConflict},
	{"closed", ErrClosed, http.StatusServiceUnavailable},
	{"not-recovered", ErrNotRecovered, http.StatusServiceUnavailable},
	{"crashed", ErrCrashed, http.StatusServiceUnavailable},
	{"unreachable", ErrUnreachable, http.StatusBadGateway},
}

// MarshalText encodes o as "undecided", "committed" or "aborted".
func (o Outcome) MarshalText() ([]byte, error) {
	switch o {
	case Undecided, Committed, Aborted:
		return []byte(o.String()), nil
	}
	return nil, fmt.Errorf("twophase: invalid outcome %d", int(o))
}

// UnmarshalText decodes what MarshalText produces.
func (o *Outcome) UnmarshalText(b []byte) error {
	for _, v := range []Outcome{Undecided, Committed, Aborted} {
		if string(b) == v.String() {
			*o = v
			return nil
		}
	}
	return fmt.Errorf("twophase: outcome %q: want undecided, committed or aborted", b)
}

// NewParticipantHandler serves r (usually a *Participant) to a coordinator over HTTP, at
// /prepare, /commit and /abort.
func NewParticipantHandler(r Resource) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /prepare", func(w http.ResponseWriter, req *http.Request) {
		in, ok := readRequest(w, req)
		if !ok {
			return
		}
		v, err := r.Prepare(req.Context(), in.TxID, in.Ops)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	for path, call := range map[string]func(context.Context, string) error{"/commit": r.Commit, "/abort": r.Abort} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
			in, ok := readRequest(w, req)
			if !ok {
				return
			}
			if err := call(req.Context(), in.TxID); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, struct{}{})
		})
	}
	return mux
}

// NewDecisionHandler serves d (usually a *Coordinator) to participants over HTTP, at /decision.
func NewDecisionHandler(d Decider) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /decision", func(w http.ResponseWriter, req *http.Request) {
		in, ok := readRequest(w, req)
		if !ok {
			return
		}
		o, err := d.Decision(req.Context(), in.TxID)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, httpDecision{Outcome: o})
	})
	return mux
}

func readRequest(w http.ResponseWriter, req *http.Request) (httpRequest, bool) {
	var in httpRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxHTTPBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, httpError{Error: "twophase: bad request body: " + err.Error()})
		return in, false
	}
	if in.TxID == "" {
		writeJSON(w, http.StatusBadRequest, httpError{Error: "twophase: bad request body: txID is required"})
		return in, false
	}
	return in, true
}

func writeError(w http.ResponseWriter, err error) {
	out, status := httpError{Error: err.Error()}, http.StatusInternalServerError
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			out.Code, status = c.code, c.status
			break
		}
	}
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client sees a truncated body
}

// httpClient calls a handler made by NewParticipantHandler or NewDecisionHandler.
type httpClient struct {
	base   string
	client *http.Client
}

func newHTTPClient(baseURL string, client *http.Client) httpClient {
	if client == nil {
		client = http.DefaultClient
	}
	return httpClient{base: strings.TrimRight(baseURL, "/"), client: client}
}

// call posts in to path and decodes the answer into out. A request that does not get an answer
// (connection refused, reset, a proxy's 502) wraps ErrUnreachable.
func (c httpClient) call(ctx context.Context, path string, in httpRequest, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("twophase: http %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("twophase: http %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("twophase: http %s %s: %w", path, in.TxID, ctx.Err())
		}
		return fmt.Errorf("twophase: http %s %s: %w: %w", path, in.TxID, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return fmt.Errorf("twophase: http %s %s: read answer: %w: %w", path, in.TxID, ErrUnreachable, err)
	}
	if resp.StatusCode >= 400 {
		var e httpError
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
				return fmt.Errorf("twophase: http %s %s: %s: %w", path, in.TxID, resp.Status, ErrUnreachable)
			}
			return fmt.Errorf("twophase: http %s %s: %s", path, in.TxID, resp.Status)
		}
		for _, code := range errorCodes {
			if e.Code == code.code {
				return fmt.Errorf("twophase: http %s: %s: %w", path, e.Error, code.err)
			}
		}
		return fmt.Errorf("twophase: http %s: %s", path, e.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("twophase: http %s %s: decode answer: %w", path, in.TxID, err)
	}
	return nil
}

// NewHTTPResource returns the coordinator's stub for a participant served by
// NewParticipantHandler at baseURL ("http://127.0.0.1:8081"). A nil client means
// http.DefaultClient; give it a Timeout, or rely on the contexts, so a hung participant cannot
// hold a call forever.
func NewHTTPResource(baseURL string, client *http.Client) Resource {
	return httpResource{newHTTPClient(baseURL, client)}
}

type httpResource struct{ c httpClient }

func (r httpResource) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	var v Vote
	err := r.c.call(ctx, "/prepare", httpRequest{TxID: txID, Ops: ops}, &v)
	return v, err
}

func (r httpResource) Commit(ctx context.Context, txID string) error {
	return r.c.call(ctx, "/commit", httpRequest{TxID: txID}, &struct{}{})
}

func (r httpResource) Abort(ctx context.Context, txID string) error {
	return r.c.call(ctx, "/abort", httpRequest{TxID: txID}, &struct{}{})
}

// NewHTTPDecider returns the participants' stub for a coordinator served by NewDecisionHandler at
// baseURL. A nil client means http.DefaultClient.
func NewHTTPDecider(baseURL string, client *http.Client) Decider {
	return httpDecider{newHTTPClient(baseURL, client)}
}

type httpDecider struct{ c httpClient }

func (d httpDecider) Decision(ctx context.Context, txID string) (Outcome, error) {
	var out httpDecision
	if err := d.c.call(ctx, "/decision", httpRequest{TxID: txID}, &out); err != nil {
		return Undecided, err
	}
	return out.Outcome, nil
}
