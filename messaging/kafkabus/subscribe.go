package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/faultline-dev/faultline/messaging"
)

const (
	// maxPollRecords bounds one poll.
	maxPollRecords = 500
	// maxQueued bounds the records a member holds queued in its partitions that are not paused
	// (each partition counting at most maxQueued/2): the poll loop stops polling, so franz-go
	// issues no new fetch, until the workers bring it under. This throttles healthy partitions.
	// It is large enough to hold several fetches (a bound of 1000 starved the workers between
	// fetches: 7× slower consumption in the benchmark against watermill).
	maxQueued = 10000
	// A partition is paused (no more fetching for it) while its worker retries a record in place,
	// and when its queue reaches pauseAt (a handler much slower than the other partitions'); it
	// resumes once the retry is decided and its queue is down to resumeAt. Pausing is kept for
	// those cases because a resumed partition waits for the fetch already in flight (up to
	// FetchMaxWait) before it gets records again.
	pauseAt  = 20000
	resumeAt = 100
)

// errAckWait is the result of a delivery whose handler did not return within AckWait.
var errAckWait = errors.New("kafkabus: handler did not return within AckWait")

// Subscribe joins cfg.Group on cfg.Topic (creating the topic and its dead-letter topic when
// missing) and returns once the group has assigned this member its partitions (possibly none, when
// the group has more members than partitions).
//
// A group that has no committed offset on a partition first gets the partition's current end
// offset committed, so it starts with the messages published from then on, and a message
// published after Subscribe returns is not skipped. A member that crashes keeps its partitions
// until the session timeout, Config.SessionTimeout(cfg.AckWait); a handler that runs longer than
// AckWait has that delivery counted as failed and the record delivered again in place.
func (b *Bus) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("kafkabus: nil handler")
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("kafkabus: subscribe on a closed bus")
	}
	if err := b.ensureTopics(ctx, cfg.Topic, cfg.DeadLetterTopic); err != nil {
		return nil, err
	}
	if err := b.startAtEnd(ctx, cfg.Group, cfg.Topic); err != nil {
		return nil, err
	}

	s := &subscription{
		bus:       b,
		cfg:       cfg,
		h:         h,
		sem:       make(chan struct{}, cfg.Concurrency),
		closingCh: make(chan struct{}),
		unstuckCh: make(chan struct{}),
	}
	s.handlerCtx, s.handlerCancel = context.WithCancel(context.WithoutCancel(ctx))
	m, err := s.newMember()
	if err != nil {
		return nil, err
	}
	s.member = m

	select {
	case <-m.ready:
	case <-ctx.Done():
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(closeCtx)
		return nil, fmt.Errorf("kafkabus: joining group %q: %w", cfg.Group, ctx.Err())
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = s.Close(ctx)
		return nil, errors.New("kafkabus: subscribe on a closed bus")
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// startAtEnd commits the end offset of every partition of topic on which group has no committed
// offset. The commit only succeeds while the group has no members (a simple commit); when it fails
// the group already runs and the members' own commits or the AtEnd reset apply.
func (b *Bus) startAtEnd(ctx context.Context, group, topic string) error {
	committed, err := b.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) { // kfake's answer for a group never seen
		committed, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("kafkabus: fetching offsets of group %q: %w", group, err)
	}
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafkabus: listing end offsets of %q: %w", topic, err)
	}
	set := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset < 0 {
			return
		}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			return
		}
		if set[o.Topic] == nil {
			set[o.Topic] = map[int32]kadm.Offset{}
		}
		set[o.Topic][o.Partition] = kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1}
	})
	if len(set) == 0 {
		return nil
	}
	if _, err := b.adm.CommitOffsets(ctx, group, set); err != nil {
		b.cfg.Logger.Debug("kafkabus: initial offset commit", "group", group, "topic", topic, "err", err)
	}
	return nil
}
