package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/faultline-dev/faultline/messaging"
)

// attemptsMeta prefixes the commit metadata that carries a record's delivery count: an offset
// committed at record X (not past it) with metadata "faultline-attempts=N" means X was delivered
// N times without being decided. The next owner of the partition starts X at Attempt N+1.
const attemptsMeta = "faultline-attempts="

// formatAttemptsMeta returns the commit metadata for a record delivered n (> 0) times.
func formatAttemptsMeta(n int) string { return attemptsMeta + strconv.Itoa(n) }

// parseAttemptsMeta reads the delivery count from commit metadata written by formatAttemptsMeta.
// It reports false for anything else (metadata of another client, a malformed or non-positive
// count, or one so large that the next attempt number, count+1, would overflow): the record then
// starts again at Attempt 1.
func parseAttemptsMeta(meta string) (int, bool) {
	if !strings.HasPrefix(meta, attemptsMeta) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(meta, attemptsMeta))
	if err != nil || n <= 0 || n == math.MaxInt {
		return 0, false
	}
	return n, true
}

// subscription is one Subscribe call. It consumes through a member (a consumer-group client);
// when a handler is stuck past AckWait the member leaves the group, so that the group's other
// members take its partitions over, and a new member joins once no handler is stuck any more
// (Kafka's max.poll.interval.ms, in effect).
type subscription struct {
	bus *Bus
	cfg messaging.SubscribeConfig
	h   messaging.Handler
	sem chan struct{} // Concurrency slots

	handlerCtx    context.Context
	handlerCancel context.CancelFunc
	handlers      sync.WaitGroup // every handler goroutine, abandoned ones included

	mu        sync.Mutex
	member    *member // nil while rejoining or closed
	closing   bool
	closingCh chan struct{}
	stuck     int           // handlers abandoned after AckWait and still running
	unstuckCh chan struct{} // closed and replaced when stuck drops to 0
	restarts  sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// member is one consumer-group client of a subscription.
type member struct {
	s  *subscription
	cl *kgo.Client

	pollCtx    context.Context
	pollCancel context.CancelFunc
	pollDone   chan struct{}

	ready     chan struct{}
	readyOnce sync.Once

	stopCommitter chan struct{}
	committerDone chan struct{}

	drained chan struct{} // capacity 1: a worker took a record off its queue

	mu      sync.Mutex
	parts   map[int32]*partWorker
	pending map[int32]pendingOffset // decided (or failed) records, not yet committed
	closing bool
}

// pendingOffset is an offset to commit; Attempts > 0 marks a record that failed Attempts
// deliveries (Offset is then that record's own offset).
type pendingOffset struct {
	kgo.EpochOffset
	Attempts int
}

func (s *subscription) newMember() (*member, error) {
	b := s.bus
	m := &member{
		s:             s,
		pollDone:      make(chan struct{}),
		ready:         make(chan struct{}),
		stopCommitter: make(chan struct{}),
		committerDone: make(chan struct{}),
		parts:         make(map[int32]*partWorker),
		pending:       make(map[int32]pendingOffset),
		drained:       make(chan struct{}, 1),
	}
	m.pollCtx, m.pollCancel = context.WithCancel(context.Background())
	session := b.cfg.SessionTimeout(s.cfg.AckWait)
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.cfg.Brokers...),
		kgo.ClientID(b.cfg.ClientID),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(min(session/5, 3*time.Second)),
		kgo.RebalanceTimeout(max(time.Minute, 2*s.cfg.AckWait)),
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
	}
	cl, err := kgo.NewClient(append(opts, b.cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: %w", err)
	}
	m.cl = cl
	go m.pollLoop()
	go m.committer()
	return m, nil
}

// onAssigned starts a worker for each new partition, telling it the delivery count carried in
// the committed offset's metadata; the first call marks the member ready.
func (m *member) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	defer m.readyOnce.Do(func() { close(m.ready) })
	ps := assigned[m.s.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	carried := m.carriedAttempts(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return
	}
	for _, p := range ps {
		if m.parts[p] != nil {
			continue
		}
		w := newPartWorker(m, p)
		if c, ok := carried[p]; ok {
			w.carryOffset, w.carryAttempts = c.Offset, c.Attempts
		}
		m.parts[p] = w
		go w.run()
	}
}

// carriedAttempts reads the group's committed offsets and returns those that carry a delivery
// count.
func (m *member) carriedAttempts(ctx context.Context) map[int32]pendingOffset {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := m.s.bus.adm.FetchOffsets(ctx, m.s.cfg.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		m.s.bus.cfg.Logger.Warn("kafkabus: fetching committed offsets", "group", m.s.cfg.Group, "err", err)
		return nil
	}
	out := map[int32]pendingOffset{}
	for p, o := range offs[m.s.cfg.Topic] {
		if o.Err != nil {
			continue
		}
		if n, ok := parseAttemptsMeta(o.Metadata); ok {
			out[p] = pendingOffset{EpochOffset: kgo.EpochOffset{Offset: o.At}, Attempts: n}
		}
	}
	return out
}

// onRevoked stops the revoked partitions' workers, waits for their records in flight to be
// decided, and commits.
func (m *member) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ws := m.detach(revoked[m.s.cfg.Topic], false)
	for _, w := range ws {
		<-w.done
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m.commit(cctx)
	m.forgetPending(ws)
}

// onLost stops the lost partitions' workers; their offsets can no longer be committed.
func (m *member) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ws := m.detach(lost[m.s.cfg.Topic], false)
	for _, w := range ws {
		<-w.done
	}
	m.forgetPending(ws)
}

// detach removes and stops the workers of partitions ps (of every partition when all is set),
// resuming fetching of any paused one so that a later assignment of it is not stuck paused.
func (m *member) detach(ps []int32, all bool) []*partWorker {
	m.mu.Lock()
	var ws []*partWorker
	if all {
		for _, w := range m.parts {
			ws = append(ws, w)
		}
		clear(m.parts)
	} else {
		for _, p := range ps {
			if w := m.parts[p]; w != nil {
				ws = append(ws, w)
				delete(m.parts, p)
			}
		}
	}
	m.mu.Unlock()
	var resume []int32
	for _, w := range ws {
		if w.stop() {
			resume = append(resume, w.part)
		}
	}
	if len(resume) > 0 {
		m.cl.ResumeFetchPartitions(map[string][]int32{m.s.cfg.Topic: resume})
	}
	return ws
}

func (m *member) forgetPending(ws []*partWorker) {
	m.mu.Lock()
	for _, w := range ws {
		delete(m.pending, w.part)
	}
	m.mu.Unlock()
}

// pollLoop fetches records and queues them to their partition's worker. BlockRebalanceOnPoll
// keeps a rebalance from running between a poll and the queueing, so a revoked partition's
// records never reach a worker created for a later assignment.
func (m *member) pollLoop() {
	defer close(m.pollDone)
	topic := m.s.cfg.Topic
	for {
		// Back-pressure: hold off polling while the workers have enough queued.
		for m.queued() >= maxQueued {
			select {
			case <-m.drained:
			case <-m.pollCtx.Done():
				m.cl.AllowRebalance()
				return
			}
		}
		fs := m.cl.PollRecords(m.pollCtx, maxPollRecords)
		if m.pollCtx.Err() != nil || fs.IsClientClosed() {
			m.cl.AllowRebalance()
			return
		}
		n := 0
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 || p.Topic != topic {
				return
			}
			n += len(p.Records)
			m.mu.Lock()
			w := m.parts[p.Partition]
			m.mu.Unlock()
			if w != nil {
				w.enqueue(p.Records)
			}
		})
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = err
			m.s.bus.cfg.Logger.Warn("kafkabus: fetch", "topic", t, "partition", p, "err", err)
		})
		m.cl.AllowRebalance()
		if n == 0 && ferr != nil {
			select {
			case <-time.After(250 * time.Millisecond):
			case <-m.pollCtx.Done():
			}
		}
	}
}

// queued returns how many records wait in the queues of the partitions that are not paused.
func (m *member) queued() int {
	m.mu.Lock()
	workers := make([]*partWorker, 0, len(m.parts))
	for _, w := range m.parts {
		workers = append(workers, w)
	}
	m.mu.Unlock()
	n := 0
	for _, w := range workers {
		w.mu.Lock()
		if !w.paused {
			n += min(len(w.queue), maxQueued/2)
		}
		w.mu.Unlock()
	}
	return n
}

// committer commits pending offsets every CommitInterval.
func (m *member) committer() {
	defer close(m.committerDone)
	t := time.NewTicker(m.s.bus.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopCommitter:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m.commit(ctx)
			cancel()
		}
	}
}

// markDone records that rec is decided: the partition's committed offset may move past it.
func (m *member) markDone(rec *kgo.Record) {
	m.mu.Lock()
	m.pending[rec.Partition] = pendingOffset{EpochOffset: kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}}
	m.mu.Unlock()
}

// markFailed records that rec failed its attempts-th delivery: the committed offset stays at rec,
// with the count in its metadata.
func (m *member) markFailed(rec *kgo.Record, attempts int) {
	m.mu.Lock()
	m.pending[rec.Partition] = pendingOffset{EpochOffset: kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}, Attempts: attempts}
	m.mu.Unlock()
}

// commit commits the pending offsets and drops those that did not change meanwhile.
func (m *member) commit(ctx context.Context) {
	m.mu.Lock()
	if len(m.pending) == 0 {
		m.mu.Unlock()
		return
	}
	snap := make(map[int32]pendingOffset, len(m.pending))
	offs := make(map[int32]kgo.EpochOffset, len(m.pending))
	for p, o := range m.pending {
		snap[p] = o
		offs[p] = o.EpochOffset
	}
	m.mu.Unlock()

	topic := m.s.cfg.Topic
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			if req.Topics[i].Topic != topic {
				continue
			}
			for j := range req.Topics[i].Partitions {
				rp := &req.Topics[i].Partitions[j]
				meta := ""
				if o, ok := snap[rp.Partition]; ok && o.Attempts > 0 {
					meta = formatAttemptsMeta(o.Attempts)
				}
				rp.Metadata = &meta
			}
		}
		return nil
	})
	var reqErr, partErr error
	m.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				reqErr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
						partErr = e
						delete(snap, p.Partition) // keep it pending
					}
				}
			}
		})
	if err := errors.Join(reqErr, partErr); err != nil {
		m.s.bus.cfg.Logger.Warn("kafkabus: commit", "group", m.s.cfg.Group, "topic", topic, "err", err)
		if reqErr != nil {
			return
		}
	}
	m.mu.Lock()
	for p, o := range snap {
		if m.pending[p] == o {
			delete(m.pending, p)
		}
	}
	m.mu.Unlock()
}

// stop stops polling and the workers; it returns the workers, to wait for.
func (m *member) stop() []*partWorker {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.pollCancel()
	<-m.pollDone
	return m.detach(nil, true)
}

// leave commits what is decided and leaves the group (the group's other members take the
// partitions over at once), after the workers have stopped.
func (m *member) leave(ctx context.Context) {
	close(m.stopCommitter)
	<-m.committerDone
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	m.commit(cctx)
	cancel()
	// Close leaves the group; the final revoke callback finds no worker left.
	m.cl.Close()
	m.readyOnce.Do(func() { close(m.ready) })
}

// stick and unstick count the handlers abandoned after AckWait that are still running.
func (s *subscription) stick() {
	s.mu.Lock()
	s.stuck++
	s.mu.Unlock()
}

func (s *subscription) unstick() {
	s.mu.Lock()
	s.stuck--
	if s.stuck == 0 {
		close(s.unstuckCh)
		s.unstuckCh = make(chan struct{})
	}
	s.mu.Unlock()
}

// restart makes m leave the group because one of its handlers is stuck, then joins a new member
// once no handler is stuck (unless the subscription closes first).
func (s *subscription) restart(m *member) {
	s.mu.Lock()
	if s.member != m || s.closing {
		s.mu.Unlock()
		return
	}
	s.member = nil
	s.restarts.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.restarts.Done()
		s.bus.cfg.Logger.Warn("kafkabus: a handler is stuck past AckWait; leaving the group until it returns",
			"group", s.cfg.Group, "topic", s.cfg.Topic, "ack_wait", s.cfg.AckWait)
		for _, w := range m.stop() {
			<-w.done
		}
		m.leave(context.Background())
		for {
			s.mu.Lock()
			if s.closing {
				s.mu.Unlock()
				return
			}
			if s.stuck == 0 {
				nm, err := s.newMember()
				if err == nil {
					s.member = nm
					s.mu.Unlock()
					return
				}
				s.bus.cfg.Logger.Error("kafkabus: rejoining the group", "group", s.cfg.Group, "err", err)
			}
			ch := s.unstuckCh
			s.mu.Unlock()
			select {
			case <-ch:
			case <-s.closingCh:
			case <-time.After(time.Second):
			}
		}
	}()
}

// Close stops polling, lets the handlers in flight finish (until ctx ends, then cancels their
// contexts), commits the decided offsets and leaves the group so that the other members take the
// partitions over at once. Records fetched but not handled are not committed: the group delivers
// them again (with the delivery count of a record that failed carried along).
func (s *subscription) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *subscription) close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	close(s.closingCh)
	m := s.member
	s.member = nil
	s.mu.Unlock()

	var ws []*partWorker
	if m != nil {
		ws = m.stop()
	}
	drained := make(chan struct{})
	go func() {
		for _, w := range ws {
			<-w.done
		}
		s.restarts.Wait() // a member leaving after a stuck handler: its workers are done after this
		s.handlers.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
		s.handlerCancel()
		// Give handlers that honour their context a moment to return, so their results count.
		select {
		case <-drained:
		case <-time.After(time.Second):
		}
	}
	if m != nil {
		m.leave(ctx)
	}
	s.restarts.Wait()
	s.handlerCancel()
	s.bus.forget(s)
	return err
}
