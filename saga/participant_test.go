package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/membus"
	"github.com/faultline-dev/faultline/outbox"
)

const (
	partCommandTopic = "stock.commands"
	partReplyTopic   = "orders.replies"
)

// partFixture is a stock participant: step "reserve" (refused for qty > 10, failing
// transiently while flaky > 0) with compensation, and step "notify" without one.
type partFixture struct {
	*barFixture
	p       *Participant
	obx     outbox.Table
	flaky   atomic.Int32
	actions atomic.Int32
	comps   atomic.Int32
}

var errPartFlaky = errors.New("stock database briefly unavailable")

func newPartFixture(t testing.TB, db *barDB) *partFixture {
	t.Helper()
	bf := newBarFixture(t, db) // the events table (its barrier is not the participant's)
	obx := outbox.Table{Name: db.table("outbox"), Channel: db.schema}
	p, err := NewParticipant(ParticipantConfig{
		DB: db.db, Dialect: db.d, BarrierTable: db.table("participant_barrier"), Outbox: obx, Clock: bf.clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	f := &partFixture{barFixture: bf, p: p, obx: obx}
	p.Handle("reserve",
		func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
			f.actions.Add(1)
			if f.flaky.Add(-1) >= 0 {
				return nil, errPartFlaky
			}
			var in struct{ Qty int }
			if err := json.Unmarshal(req.Input, &in); err != nil {
				return nil, Fail(fmt.Errorf("input: %w", err))
			}
			if err := f.record(ctx, tx, req.SagaID, "reserved"); err != nil {
				return nil, err
			}
			if in.Qty > 10 {
				return nil, Fail(fmt.Errorf("out of stock: %d requested", in.Qty))
			}
			return json.Marshal(map[string]string{"reservation": "r-" + req.SagaID})
		},
		func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
			f.comps.Add(1)
			return nil, f.record(ctx, tx, req.SagaID, "released")
		})
	p.Handle("notify", func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		return nil, f.record(ctx, tx, req.SagaID, "notified")
	}, nil)
	return f
}

// partReq is a request for step with the given qty.
func partReq(sagaID, step string, op Op, attempt, qty int) *Request {
	r := barReq(sagaID, step, op, attempt)
	r.Input = json.RawMessage(fmt.Sprintf(`{"qty":%d}`, qty))
	return r
}

// partCommand is the command message an orchestrator sends for req.
func partCommand(t testing.TB, req *Request) *messaging.Message {
	t.Helper()
	payload, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &messaging.Message{
		ID: commandMessageID(req.Key(), req.Attempt), Topic: partCommandTopic, Key: req.SagaID,
		Headers: map[string]string{HeaderReplyTo: partReplyTopic, HeaderSagaID: req.SagaID},
		Payload: payload,
	}
}

// replies returns the reply messages in the outbox, in insertion order.
func (f *partFixture) replies(t testing.TB) []*messaging.Message {
	t.Helper()
	rows, err := f.db.Query(`SELECT message_id, topic, msg_key, headers, payload FROM ` + f.obx.Name + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*messaging.Message
	for rows.Next() {
		var m messaging.Message
		var headers sql.NullString
		if err := rows.Scan(&m.ID, &m.Topic, &m.Key, &headers, &m.Payload); err != nil {
			t.Fatal(err)
		}
		if headers.Valid {
			if err := json.Unmarshal([]byte(headers.String), &m.Headers); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, &m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantReplyMessage checks a reply message's envelope against the request it answers and returns
// the decoded reply.
func wantReplyMessage(t testing.TB, m *messaging.Message, req *Request) *Reply {
	t.Helper()
	if want := req.Key().String() + "/" + fmt.Sprint(req.Attempt) + "/reply"; m.ID != want {
		t.Errorf("reply message ID %q, want %q", m.ID, want)
	}
	if m.Topic != partReplyTopic || m.Key != req.SagaID || m.Headers[HeaderSagaID] != req.SagaID {
		t.Errorf("reply %s: topic %q key %q headers %v; want %s, key and %s = %s", m.ID, m.Topic, m.Key, m.Headers, partReplyTopic, HeaderSagaID, req.SagaID)
	}
	rep, err := DecodeReply(m.Payload)
	if err != nil {
		t.Fatalf("reply %s: %v", m.ID, err)
	}
	return rep
}

// collector is a messaging.Handler that keeps what it receives.
type collector struct {
	mu   sync.Mutex
	msgs []*messaging.Message
}

func (c *collector) handle(_ context.Context, m *messaging.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *collector) got() []*messaging.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*messaging.Message(nil), c.msgs...)
}

func TestParticipantConfigErrors(t *testing.T) {
	db := &sql.DB{}
	cases := []struct {
		name string
		cfg  ParticipantConfig
		want string
	}{
		{"no DB", ParticipantConfig{Dialect: SQLite}, "DB is nil"},
		{"no dialect", ParticipantConfig{DB: db}, "Dialect is"},
		{"bad barrier table", ParticipantConfig{DB: db, Dialect: SQLite, BarrierTable: "x-y"}, `table "x-y"`},
		{"outbox dialect differs", ParticipantConfig{DB: db, Dialect: SQLite, Outbox: outbox.Table{Dialect: Postgres}}, "Outbox.Dialect postgres differs"},
		{"bad outbox name", ParticipantConfig{DB: db, Dialect: SQLite, Outbox: outbox.Table{Name: "a b"}}, "Outbox"},
		{"negative body limit", ParticipantConfig{DB: db, Dialect: SQLite, HTTPMaxBody: -1}, "HTTPMaxBody is -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewParticipant(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewParticipant: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParticipantHandlePanicsOnBadRegistration(t *testing.T) {
	p, err := NewParticipant(ParticipantConfig{DB: &sql.DB{}, Dialect: SQLite})
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, *sql.Tx, *Request) (json.RawMessage, error) { return nil, nil }
	p.Handle("reserve", noop, nil)
	for name, f := range map[string]func(){
		"empty step": func() { p.Handle("", noop, nil) },
		"nil action": func() { p.Handle("charge", nil, noop) },
		"twice":      func() { p.Handle("reserve", noop, noop) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle did not panic")
				}
			}()
			f()
		})
	}
	if got := p.Steps(); len(got) != 1 || got[0] != "reserve" {
		t.Errorf("Steps() = %v, want [reserve]", got)
	}
}

// End to end over membus: commands in, the participant's transactions, replies through the
// outbox relay, with their IDs, the stored outcome for duplicates, and the trace context.
func TestParticipantOverMembusRepliesThroughOutbox(t *testing.T) {
	f := newPartFixture(t, openBarSQLite(t))
	ctx := context.Background()
	bus := membus.New(membus.WithClock(f.clk))
	t.Cleanup(func() { bus.Close(context.Background()) })
	if _, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: partCommandTopic, Group: "stock"}, f.p.Handler()); err != nil {
		t.Fatal(err)
	}
	var replies, dead collector
	if _, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: partReplyTopic, Group: "orders"}, replies.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: partCommandTopic + messaging.DeadLetterSuffix, Group: "ops"}, dead.handle); err != nil {
		t.Fatal(err)
	}

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	tctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled,
	}))

	type want struct {
		req    *Request
		status ReplyStatus
		errSub string
		output string
	}
	okOut := `{"reservation":"r-s1"}`
	wants := []want{
		{partReq("s1", "reserve", OpAction, 1, 2), ReplySucceeded, "", okOut},
		{partReq("s1", "reserve", OpAction, 2, 2), ReplySucceeded, "", okOut}, // orchestrator's retry
		{partReq("s2", "reserve", OpAction, 1, 50), ReplyFailed, "out of stock: 50 requested", ""},
		{partReq("s2", "reserve", OpCompensate, 1, 50), ReplySucceeded, "", ""},                      // nothing to undo
		{partReq("s3", "reserve", OpCompensate, 1, 2), ReplySucceeded, "", ""},                       // null compensation
		{partReq("s3", "reserve", OpAction, 1, 2), ReplyFailed, "compensated before the action", ""}, // hanging action
		{partReq("s4", "notify", OpAction, 1, 0), ReplySucceeded, "", ""},
		{partReq("s4", "notify", OpCompensate, 1, 0), ReplySucceeded, "", ""}, // no compensation registered
	}
	for i, w := range wants {
		if err := bus.Publish(tctx, partCommand(t, w.req)); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the broker delivers attempt 1 twice
			if err := bus.Publish(tctx, partCommand(t, w.req)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bus.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.replies(t); len(got) != len(wants) {
		t.Fatalf("%d replies in the outbox, want %d (one per attempt)", len(got), len(wants))
	}
	if len(dead.got()) != 0 {
		t.Fatalf("dead-lettered: %v", dead.got()[0].Headers)
	}
	if bus.Backlog(partCommandTopic, "stock") != 0 {
		t.Fatalf("commands left unacknowledged")
	}
	// Nothing is published before the relay runs: replies leave only through the outbox.
	if len(replies.got()) != 0 {
		t.Fatalf("replies published without the relay")
	}

	store, err := outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: f.db, Table: f.obx.Name})
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{Store: store, Publisher: bus, Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.RunOnce(ctx); err != nil || n != len(wants) {
		t.Fatalf("relay RunOnce = %d, %v; want %d", n, err, len(wants))
	}
	if err := bus.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]*messaging.Message{}
	for _, m := range replies.got() {
		if got[m.ID] != nil {
			t.Errorf("reply %s published twice", m.ID)
		}
		got[m.ID] = m
	}
	for _, w := range wants {
		id := replyMessageID(w.req.Key(), w.req.Attempt)
		m := got[id]
		if m == nil {
			t.Errorf("no reply %s", id)
			continue
		}
		rep := wantReplyMessage(t, m, w.req)
		wantReply(t, rep, w.req, w.status, w.errSub, w.output)
		sc := trace.SpanContextFromContext(messaging.ExtractTrace(ctx, m))
		if sc.TraceID() != traceID {
			t.Errorf("reply %s: trace %v, want the command's %v (headers %v)", id, sc.TraceID(), traceID, m.Headers)
		}
	}
	for saga, want := range map[string]map[string]int{
		"s1": {"reserved": 1}, "s2": {}, "s3": {}, "s4": {"notified": 1},
	} {
		if got := f.eventCounts(t, saga); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("saga %s: events %v, want %v", saga, got, want)
		}
	}
	if n, err := relay.RunOnce(ctx); err != nil || n != 0 {
		t.Errorf("second RunOnce = %d, %v; want nothing left", n, err)
	}
}

// Commands no retry can fix go to the dead-letter topic at once, with a reason that says why;
// nothing is applied or answered.
func TestParticipantDeadLettersBadCommands(t *testing.T) {
	f := newPartFixture(t, openBarSQLite(t))
	ctx := context.Background()
	bus := membus.New(membus.WithClock(f.clk))
	t.Cleanup(func() { bus.Close(context.Background()) })
	if _, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: partCommandTopic, Group: "stock"}, f.p.Handler()); err != nil {
		t.Fatal(err)
	}
	var dead collector
	if _, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: partCommandTopic + messaging.DeadLetterSuffix, Group: "ops"}, dead.handle); err != nil {
		t.Fatal(err)
	}
	good := partCommand(t, partReq("s1", "reserve", OpAction, 1, 1))
	with := func(id string, edit func(m *messaging.Message)) *messaging.Message {
		m := *good
		m.ID = id
		m.Headers = map[string]string{HeaderReplyTo: partReplyTopic}
		edit(&m)
		return &m
	}
	cases := map[string]struct {
		msg  *messaging.Message
		want []string
	}{
		"not-json": {with("not-json", func(m *messaging.Message) { m.Payload = []byte("{oops") }), []string{"undecodable command", "saga request"}},
		"no-saga": {with("no-saga", func(m *messaging.Message) {
			m.Payload = []byte(`{"step":"reserve","op":"action","attempt":1}`)
		}), []string{"undecodable command", "field sagaId is empty"}},
		"bad-op": {with("bad-op", func(m *messaging.Message) {
			m.Payload = []byte(`{"sagaId":"s1","step":"reserve","op":"undo","attempt":1}`)
		}), []string{"field op is \"undo\""}},
		"unknown-step": {with("unknown-step", func(m *messaging.Message) {
			m.Payload = []byte(`{"sagaId":"s1","saga":"order","step":"ship","op":"action","attempt":1}`)
		}), []string{`unknown step "ship"`, "serves: notify, reserve"}},
		"no-reply-to":  {with("no-reply-to", func(m *messaging.Message) { delete(m.Headers, HeaderReplyTo) }), []string{"no " + HeaderReplyTo + " header"}},
		"bad-reply-to": {with("bad-reply-to", func(m *messaging.Message) { m.Headers[HeaderReplyTo] = "orders replies" }), []string{"header " + HeaderReplyTo, "orders replies"}},
	}
	for _, c := range cases {
		if err := bus.Publish(ctx, c.msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]*messaging.Message{}
	for _, m := range dead.got() {
		got[m.ID] = m
	}
	for id, c := range cases {
		m := got[id]
		if m == nil {
			t.Errorf("%s: not dead-lettered", id)
			continue
		}
		reason := m.Headers[messaging.HeaderDeadLetterReason]
		for _, w := range c.want {
			if !strings.Contains(reason, w) {
				t.Errorf("%s: dead-letter reason %q, want it to mention %q", id, reason, w)
			}
		}
		if m.Headers[messaging.HeaderAttempts] != "1" {
			t.Errorf("%s: dead-lettered after %s deliveries, want at once", id, m.Headers[messaging.HeaderAttempts])
		}
	}
	if n := len(f.replies(t)); n != 0 || f.actions.Load() != 0 {
		t.Errorf("bad commands produced %d replies and %d action calls, want none", n, f.actions.Load())
	}
}

// A transient failure leaves nothing (no barrier row, no reply) and asks for redelivery; the
// redelivery is applied.
func TestParticipantTransientErrorRedelivers(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newPartFixture(t, db)
		ctx := context.Background()
		h := f.p.Handler()
		req := partReq("s1", "reserve", OpAction, 1, 3)
		msg := partCommand(t, req)
		f.flaky.Store(1)
		err := h(ctx, msg)
		if !errors.Is(err, errPartFlaky) {
			t.Fatalf("handler: %v, want the transient error", err)
		}
		cfg, _ := messaging.SubscribeConfig{Topic: partCommandTopic, Group: "stock"}.WithDefaults()
		if d := messaging.Decide(cfg, 1, err); d.Ack || d.DeadLetter {
			t.Fatalf("decision %+v, want a redelivery", d)
		}
		if rec, ok, _ := f.p.Barrier().Lookup(ctx, req.Key()); ok {
			t.Errorf("barrier row %+v after a transient error", rec)
		}
		if n := len(f.replies(t)); n != 0 {
			t.Errorf("%d replies after a transient error", n)
		}
		if err := h(ctx, msg); err != nil {
			t.Fatalf("redelivery: %v", err)
		}
		r := f.replies(t)
		if len(r) != 1 {
			t.Fatalf("%d replies, want 1", len(r))
		}
		wantReply(t, wantReplyMessage(t, r[0], req), req, ReplySucceeded, "", `{"reservation":"r-s1"}`)
		if got := f.eventCounts(t, "s1"); got["reserved"] != 1 {
			t.Errorf("events %v, want reserved once", got)
		}
	})
}

// The same attempt delivered again (here, many times at once) writes its reply once; a new
// attempt gets a reply of its own with the stored outcome. Both databases.
func TestParticipantDuplicateCommandsOneReplyPerAttempt(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newPartFixture(t, db)
		ctx := context.Background()
		h := f.p.Handler()
		for _, attempt := range []int{1, 2} {
			req := partReq("s1", "reserve", OpAction, attempt, 20) // refused: the refusal is the stored outcome
			msg := partCommand(t, req)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					<-start
					if err := h(ctx, msg); err != nil {
						t.Errorf("attempt %d: %v", attempt, err)
					}
				})
			}
			close(start)
			wg.Wait()
		}
		r := f.replies(t)
		if len(r) != 2 {
			t.Fatalf("%d replies, want 2 (one per attempt)", len(r))
		}
		for i, m := range r {
			req := partReq("s1", "reserve", OpAction, i+1, 20)
			wantReply(t, wantReplyMessage(t, m, req), req, ReplyFailed, "out of stock: 20 requested", "")
		}
		if n := f.actions.Load(); n != 1 {
			t.Errorf("action ran %d times, want 1", n)
		}
		if got := f.eventCounts(t, "s1"); len(got) != 0 {
			t.Errorf("events %v: the refused action's writes were kept", got)
		}
	})
}

// The clock stamps the barrier's rows.
func TestParticipantUsesItsClock(t *testing.T) {
	f := newPartFixture(t, openBarSQLite(t))
	f.clk.Set(barT0.Add(36 * time.Hour))
	req := partReq("s1", "notify", OpAction, 1, 0)
	if err := f.p.Handler()(context.Background(), partCommand(t, req)); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := f.p.Barrier().Lookup(context.Background(), req.Key())
	if err != nil || !ok || !rec.CreatedAt.Equal(f.clk.Now()) {
		t.Fatalf("record %+v, %v, %v: want created at %v", rec, ok, err, f.clk.Now())
	}
}
