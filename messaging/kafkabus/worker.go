package kafkabus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
)

// partWorker handles one assigned partition's records, one at a time, in offset order.
type partWorker struct {
	m    *member
	part int32

	// carryOffset's record was delivered carryAttempts times before this worker (by a former
	// owner of the partition, read from the committed offset's metadata).
	carryOffset   int64
	carryAttempts int

	mu       sync.Mutex
	queue    []*kgo.Record
	paused   bool
	retrying bool // a record failed and is retried in place: the partition is paused meanwhile
	stopped  bool

	wake   chan struct{} // capacity 1: records were queued
	stopCh chan struct{} // closed by stop
	done   chan struct{} // closed when run returns
}

func newPartWorker(m *member, part int32) *partWorker {
	return &partWorker{
		m:           m,
		carryOffset: -1,
		part:        part,
		wake:        make(chan struct{}, 1),
		stopCh:      make(chan struct{}),
		done:        make(chan struct{}),
	}
}

// enqueue queues fetched records, pausing the partition's fetching when the queue is long.
func (w *partWorker) enqueue(recs []*kgo.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= pauseAt {
		w.paused = true
		w.m.cl.PauseFetchPartitions(map[string][]int32{w.m.s.cfg.Topic: {w.part}})
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop makes the worker drop its queue and return after the record in flight is decided (a record
// waiting for a retry is abandoned, uncommitted). It reports whether the partition was paused.
func (w *partWorker) stop() (wasPaused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.stopped = true
	w.queue = nil
	close(w.stopCh)
	wasPaused, w.paused = w.paused, false
	return wasPaused
}

func (w *partWorker) next() (*kgo.Record, bool) {
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return nil, false
		}
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if w.paused && !w.retrying && len(w.queue) <= resumeAt {
				w.paused = false
				w.m.cl.ResumeFetchPartitions(map[string][]int32{w.m.s.cfg.Topic: {w.part}})
			}
			w.mu.Unlock()
			select { // let a poll loop held back by maxQueued look again
			case w.m.drained <- struct{}{}:
			default:
			}
			return r, true
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.stopCh:
		}
	}
}

func (w *partWorker) stopping() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

func (w *partWorker) run() {
	defer close(w.done)
	for {
		rec, ok := w.next()
		if !ok || !w.process(rec) {
			return
		}
	}
}

// process delivers rec until it is acknowledged or dead-lettered, retrying in place; it reports
// false when the worker was stopped before rec was decided.
func (w *partWorker) process(rec *kgo.Record) bool {
	s, m := w.m.s, w.m
	first := 1
	if rec.Offset == w.carryOffset {
		first = w.carryAttempts + 1
	}
	for attempt := first; ; attempt++ {
		if w.stopping() {
			return false
		}
		select {
		case s.sem <- struct{}{}:
		case <-w.stopCh:
			return false
		}
		msg := toMessage(rec, attempt)
		abandoned, err := s.deliver(msg)
		<-s.sem

		d := messaging.Decide(s.cfg, attempt, err)
		switch {
		case d.Ack:
			m.markDone(rec)
			w.setRetrying(false)
			return true
		case d.DeadLetter:
			if !w.deadLetter(msg, d.Reason) {
				m.markFailed(rec, attempt)
				return false
			}
			m.markDone(rec)
			w.setRetrying(false)
			return true
		}
		m.markFailed(rec, attempt)
		w.setRetrying(true)
		if abandoned {
			// The handler is stuck: leave the group so that another member gets the record.
			s.restart(m)
			return false
		}
		if !w.sleep(d.Delay) {
			return false
		}
	}
}

// setRetrying marks whether the worker retries a record in place, pausing the partition's fetching
// meanwhile (its records would only queue up) and resuming it once the record is decided and the
// queue is short.
func (w *partWorker) setRetrying(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.retrying == on {
		return
	}
	w.retrying = on
	topic := map[string][]int32{w.m.s.cfg.Topic: {w.part}}
	switch {
	case on && !w.paused:
		w.paused = true
		w.m.cl.PauseFetchPartitions(topic)
	case !on && w.paused && len(w.queue) <= resumeAt:
		w.paused = false
		w.m.cl.ResumeFetchPartitions(topic)
	}
}

// sleep waits d, or reports false when the worker stops first.
func (w *partWorker) sleep(d time.Duration) bool {
	if d <= 0 {
		return !w.stopping()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stopCh:
		return false
	}
}

// deadLetter publishes msg's dead-letter copy, retrying until it is accepted; it reports false
// when the subscription gave up first (the record stays uncommitted and is delivered again).
func (w *partWorker) deadLetter(msg *messaging.Message, reason string) bool {
	s := w.m.s
	dl := messaging.DeadLetterMessage(s.cfg, msg, reason)
	backoff := 100 * time.Millisecond
	for {
		err := s.bus.produce(s.handlerCtx, []*kgo.Record{toRecord(dl)})
		if err == nil {
			return true
		}
		s.bus.cfg.Logger.Warn("kafkabus: dead-letter publish", "topic", s.cfg.DeadLetterTopic, "id", msg.ID, "err", err)
		if s.handlerCtx.Err() != nil || !w.sleep(backoff) {
			return false
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// deliver runs the handler for msg and returns its result, or errAckWait and abandoned when it
// has not returned within AckWait (the handler keeps running, counted as stuck until it returns;
// its late result is ignored).
func (s *subscription) deliver(msg *messaging.Message) (abandoned bool, err error) {
	ctx := messaging.ExtractTrace(s.handlerCtx, msg)
	var (
		mu           sync.Mutex
		done, gaveUp bool
		res          = make(chan error, 1)
	)
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		err := s.call(ctx, msg)
		mu.Lock()
		done = true
		g := gaveUp
		mu.Unlock()
		if g {
			s.unstick()
			return
		}
		res <- err
	}()
	t := time.NewTimer(s.cfg.AckWait)
	defer t.Stop()
	select {
	case err := <-res:
		return false, err
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	if done {
		return false, <-res
	}
	gaveUp = true
	s.stick()
	return true, errAckWait
}

// call runs the handler, turning a panic into an error (a plain error: redelivery).
func (s *subscription) call(ctx context.Context, msg *messaging.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kafkabus: handler panicked: %v", r)
		}
	}()
	return s.h(ctx, msg)
}
