package twophase

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHTTPTransport runs transactions with the coordinator and the participants talking JSON over
// HTTP on 127.0.0.1: a commit, a no vote, errors that keep their identity across the wire, a
// participant whose server is gone, and an in-doubt participant asking a crashed and then a
// recovered coordinator.
func TestHTTPTransport(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	servers := map[string]*httptest.Server{}
	for _, name := range c.names {
		// Behind each server is whatever incarnation of the participant is registered now.
		servers[name] = httptest.NewServer(NewParticipantHandler(c.net.Resource(name)))
		t.Cleanup(servers[name].Close)
		c.resources[name] = NewHTTPResource(servers[name].URL, nil)
	}
	decisions := httptest.NewServer(NewDecisionHandler(c.net.Decider()))
	t.Cleanup(decisions.Close)
	decider := NewHTTPDecider(decisions.URL+"/", nil)
	if !strings.HasPrefix(decisions.URL, "http://127.0.0.1:") {
		t.Fatalf("server at %s, want 127.0.0.1", decisions.URL)
	}

	c.startCoordinator(nil)
	if o, err := c.coord.Run(c.ctx, "t1", transfer("bank-a", "alice", "bank-b", "bob", 30)); err != nil || o != Committed {
		t.Fatalf("Run = %v, %v", o, err)
	}
	if o, err := c.coord.Run(c.ctx, "t2", transfer("bank-a", "alice", "bank-b", "bob", 1000)); err != nil || o != Aborted {
		t.Fatalf("Run overdrawing = %v, %v", o, err)
	}
	if a, b := c.balance("bank-a", "alice"), c.balance("bank-b", "bob"); a != 70 || b != 130 {
		t.Errorf("alice %d, bob %d", a, b)
	}

	res := c.resources["bank-a"]
	if err := res.Commit(c.ctx, "nope"); !errors.Is(err, ErrNotPrepared) {
		t.Errorf("Commit of an unknown transaction over HTTP = %v; want ErrNotPrepared", err)
	}
	if err := res.Abort(c.ctx, "t1"); !errors.Is(err, ErrConflict) {
		t.Errorf("Abort of a committed transaction over HTTP = %v; want ErrConflict", err)
	}
	if d, err := decider.Decision(c.ctx, "never-seen"); err != nil || d != Aborted {
		t.Errorf("Decision over HTTP = %v, %v", d, err)
	}
	resp, err := http.Post(servers["bank-a"].URL+"/prepare", "application/json", strings.NewReader(`{"txID":""}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty txID: status %d", resp.StatusCode)
	}

	// A participant cut off the network answers 502 through its server; one whose server is
	// gone does not answer at all. Both are unreachable, and the transaction aborts.
	c.net.Cut("bank-b")
	if _, err := c.resources["bank-b"].Prepare(c.ctx, "t3", nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Prepare at a cut participant = %v; want ErrUnreachable", err)
	}
	c.net.Heal("bank-b")
	servers["bank-b"].Close()
	if o, err := c.coord.Run(c.ctx, "t4", transfer("bank-a", "alice", "bank-b", "bob", 5)); err != nil || o != Aborted {
		t.Errorf("Run with bank-b's server down = %v, %v", o, err)
	}
	if err := c.resources["bank-b"].Abort(c.ctx, "t4"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Abort with the server down = %v; want ErrUnreachable", err)
	}

	// A participant in doubt asks over HTTP: the crashed coordinator says so; a recovered one
	// answers with the logged decision.
	servers["bank-b"] = httptest.NewServer(NewParticipantHandler(c.net.Resource("bank-b")))
	t.Cleanup(servers["bank-b"].Close)
	c.resources["bank-b"] = NewHTTPResource(servers["bank-b"].URL, nil)
	co := c.startCoordinator(crashOnce(CrashAfterDecision, "t5"))
	if _, err := co.Run(c.ctx, "t5", transfer("bank-a", "alice", "bank-b", "bob", 10)); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Run = %v; want a crash", err)
	}
	if _, err := decider.Decision(c.ctx, "t5"); !errors.Is(err, ErrCrashed) {
		t.Errorf("Decision from the crashed coordinator over HTTP = %v; want ErrCrashed", err)
	}
	c.startCoordinator(nil)
	if d, err := decider.Decision(c.ctx, "t5"); err != nil || d != Committed {
		t.Errorf("Decision after the restart = %v, %v; want committed", d, err)
	}
	if _, err := c.coord.Recover(c.ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := c.balance("bank-a", "alice"), c.balance("bank-b", "bob"); a != 60 || b != 140 {
		t.Errorf("alice %d, bob %d after recovery", a, b)
	}
	c.checkQuiescent()
}
