package twophase

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Op is one change a transaction makes at a participant: add Delta to the balance of Key.
type Op struct {
	Key   string `json:"key"`
	Delta int64  `json:"delta"`
}

// Vote is a participant's answer to prepare.
type Vote struct {
	// Yes: the participant has durably recorded the transaction, holds its locks and will commit
	// or abort as told, even after a crash.
	Yes bool `json:"yes"`
	// Reason says why the vote is no.
	Reason string `json:"reason,omitempty"`
}

// Resource is what the coordinator needs from a participant. *Participant implements it; so do
// the clients of the transports (Network.Resource, NewHTTPResource), which may fail with
// ErrUnreachable. Commit and Abort are idempotent.
type Resource interface {
	// Prepare asks the participant to promise to commit ops under txID.
	Prepare(ctx context.Context, txID string, ops []Op) (Vote, error)
	// Commit tells the participant the decision is commit.
	Commit(ctx context.Context, txID string) error
	// Abort tells the participant the decision is abort.
	Abort(ctx context.Context, txID string) error
}

// Decider answers a participant that asks how an in-doubt transaction ended. *Coordinator
// implements it; so do Network.Decider and NewHTTPDecider.
type Decider interface {
	// Decision returns the transaction's outcome, Undecided while the coordinator is still
	// collecting votes.
	Decision(ctx context.Context, txID string) (Outcome, error)
}

// DeciderFunc adapts a function to Decider: for example one that routes each transaction id to
// the coordinator that owns it, when participants serve several coordinators.
type DeciderFunc func(ctx context.Context, txID string) (Outcome, error)

// Decision calls f.
func (f DeciderFunc) Decision(ctx context.Context, txID string) (Outcome, error) { return f(ctx, txID) }

// ErrUnreachable is returned by a transport when the other side cannot be reached: the network
// is cut, or the process is down. The message may or may not have been delivered.
var ErrUnreachable = errors.New("unreachable")

// CoordinatorNode is the name Network uses for the coordinator in Cut and Heal.
const CoordinatorNode = "coordinator"

// Network is the in-process transport: it routes calls to participants and to the coordinator
// registered with it, and lets a test cut a node off (every call to it fails with
// ErrUnreachable before reaching it) and heal it again. A restarted node is registered again
// under the same name. It is safe for concurrent use.
type Network struct {
	mu           sync.Mutex
	participants map[string]Resource
	coordinator  Decider
	cut          map[string]bool
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{participants: map[string]Resource{}, cut: map[string]bool{}}
}

// Register attaches participant name (replacing a previous incarnation).
func (n *Network) Register(name string, r Resource) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.participants[name] = r
}

// SetCoordinator attaches the coordinator that answers Decision (replacing a previous one).
func (n *Network) SetCoordinator(d Decider) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.coordinator = d
}

// Cut makes every call to node (a participant's name, or CoordinatorNode) fail with
// ErrUnreachable until Heal.
func (n *Network) Cut(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[node] = true
}

// Heal undoes Cut.
func (n *Network) Heal(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, node)
}

// Resource returns the coordinator's stub for participant name: calls go to whatever is
// registered under name when they are made.
func (n *Network) Resource(name string) Resource { return netResource{n: n, name: name} }

// Resources returns stubs for the named participants, for Config.Participants.
func (n *Network) Resources(names ...string) map[string]Resource {
	m := make(map[string]Resource, len(names))
	for _, name := range names {
		m[name] = n.Resource(name)
	}
	return m
}

// Decider returns the participants' stub for the coordinator.
func (n *Network) Decider() Decider { return netDecider{n: n} }

func (n *Network) participant(ctx context.Context, name string) (Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.participants[name]
	if r == nil || n.cut[name] {
		return nil, fmt.Errorf("twophase: network: participant %q: %w", name, ErrUnreachable)
	}
	return r, nil
}

type netResource struct {
	n    *Network
	name string
}

func (r netResource) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	p, err := r.n.participant(ctx, r.name)
	if err != nil {
		return Vote{}, err
	}
	return p.Prepare(ctx, txID, ops)
}

func (r netResource) Commit(ctx context.Context, txID string) error {
	p, err := r.n.participant(ctx, r.name)
	if err != nil {
		return err
	}
	return p.Commit(ctx, txID)
}

func (r netResource) Abort(ctx context.Context, txID string) error {
	p, err := r.n.participant(ctx, r.name)
	if err != nil {
		return err
	}
	return p.Abort(ctx, txID)
}

type netDecider struct{ n *Network }

func (d netDecider) Decision(ctx context.Context, txID string) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Undecided, err
	}
	d.n.mu.Lock()
	c, cut := d.n.coordinator, d.n.cut[CoordinatorNode]
	d.n.mu.Unlock()
	if c == nil || cut {
		return Undecided, fmt.Errorf("twophase: network: coordinator: %w", ErrUnreachable)
	}
	return c.Decision(ctx, txID)
}
