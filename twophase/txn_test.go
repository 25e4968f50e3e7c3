package twophase

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/txn/*.txt")

// TestTxnScripts runs the coordinator core through the scripts in testdata/txn: each block is a
// command, "----", and the actions and state the core must produce. A new scenario is a new
// block, not new Go code; -update rewrites the expectations.
//
// Commands:
//
//	new ID P1,P2,... timeout=DUR       NewTxn
//	restore ID P1,P2,... decision=D    RestoreTxn (D: none, commit, abort)
//	start|logged|tick|recover [at=DUR] Step with that event
//	vote P yes|no [at=DUR]             Step(EventVote)
//	no-answer P [at=DUR]               Step(EventNoAnswer)
//	ack P [at=DUR]                     Step(EventAck)
//
// Times are offsets from an arbitrary epoch.
func TestTxnScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "txn", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTxnScript(t, file)
		})
	}
}

type scriptBlock struct {
	pre      []string // comments and blank lines before the command
	line     int
	command  string
	expected []string
}

func parseScript(t *testing.T, file string) ([]scriptBlock, []string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var (
		blocks []scriptBlock
		pre    []string
	)
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := scriptBlock{pre: pre, line: i + 1, command: l}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: want ---- after the command", file, i+1)
		}
		i += 2
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			b.expected = append(b.expected, lines[i])
		}
		i-- // the blank line, if any, goes to the next block's pre
		blocks = append(blocks, b)
	}
	return blocks, pre
}

func runTxnScript(t *testing.T, file string) {
	blocks, trailer := parseScript(t, file)
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var txn *Txn
	var out strings.Builder
	for _, b := range blocks {
		got, err := runTxnCommand(&txn, epoch, b.command)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", file, b.line, b.command, err)
		}
		if !*update && strings.Join(got, "\n") != strings.Join(b.expected, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, b.line, b.command,
				strings.Join(got, "\n"), strings.Join(b.expected, "\n"))
		}
		for _, l := range b.pre {
			out.WriteString(l + "\n")
		}
		out.WriteString(b.command + "\n----\n")
		for _, l := range got {
			out.WriteString(l + "\n")
		}
	}
	for _, l := range trailer {
		out.WriteString(l + "\n")
	}
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runTxnCommand(txn **Txn, epoch time.Time, command string) ([]string, error) {
	fields := strings.Fields(command)
	args := map[string]string{}
	var pos []string
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	now := epoch
	if at, ok := args["at"]; ok {
		d, err := time.ParseDuration(at)
		if err != nil {
			return nil, err
		}
		now = epoch.Add(d)
	}
	need := func(n int) error {
		if len(pos) != n {
			return fmt.Errorf("want %d arguments, got %d", n, len(pos))
		}
		return nil
	}
	var acts []Action
	switch fields[0] {
	case "new":
		if err := need(2); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(args["timeout"])
		if err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		*txn = NewTxn(pos[0], strings.Split(pos[1], ","), d)
	case "restore":
		if err := need(2); err != nil {
			return nil, err
		}
		var d Outcome
		switch args["decision"] {
		case "none":
		case "commit":
			d = Committed
		case "abort":
			d = Aborted
		default:
			return nil, fmt.Errorf("decision %q: want none, commit or abort", args["decision"])
		}
		*txn = RestoreTxn(pos[0], strings.Split(pos[1], ","), d)
	default:
		if *txn == nil {
			return nil, fmt.Errorf("no transaction: start with new or restore")
		}
		ev := Event{Now: now}
		switch fields[0] {
		case "start":
			ev.Kind = EventStart
		case "logged":
			ev.Kind = EventLogged
		case "tick":
			ev.Kind = EventTick
		case "recover":
			ev.Kind = EventRecover
		case "vote":
			if err := need(2); err != nil {
				return nil, err
			}
			ev.Kind, ev.Participant, ev.Yes = EventVote, pos[0], pos[1] == "yes"
		case "no-answer":
			if err := need(1); err != nil {
				return nil, err
			}
			ev.Kind, ev.Participant = EventNoAnswer, pos[0]
		case "ack":
			if err := need(1); err != nil {
				return nil, err
			}
			ev.Kind, ev.Participant = EventAck, pos[0]
		default:
			return nil, fmt.Errorf("unknown command %q", fields[0])
		}
		acts = (*txn).Step(ev)
	}
	var out []string
	for _, a := range acts {
		out = append(out, a.String())
	}
	x := *txn
	status := fmt.Sprintf("=> state=%v decision=%v", x.State(), x.Decision())
	if !x.Deadline().IsZero() {
		status += fmt.Sprintf(" deadline=%v", x.Deadline().Sub(epoch))
	}
	if u := x.Unacked(); len(u) > 0 && (x.State() == StateCommitting || x.State() == StateAborting) {
		status += " unacked=" + strings.Join(u, ",")
	}
	return append(out, status), nil
}

// TestTxnInvariants feeds the core random event streams (duplicates, reordering, unknown
// participants, late votes) and checks the protocol's safety rules after every step:
//   - no prepare goes out before the begin record is durable;
//   - one decision at most, commit only if every participant voted yes before the deadline;
//   - no decision message before the decision is durable, and only messages matching it;
//   - forget only once every participant acknowledged (or voted no).
func TestTxnInvariants(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("FAULTLINE_2PC_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_2PC_SEED=%q: want an integer", s)
		}
		seed = n
	}
	t.Logf("seed %d (replay: FAULTLINE_2PC_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	names := []string{"a", "b", "c", "z"} // z is not a participant
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for run := range 2000 {
		n := 1 + rng.IntN(3)
		ps := names[:n]
		timeout := time.Duration(1+rng.IntN(10)) * time.Second
		var txn *Txn
		restored := rng.IntN(4) == 0
		if restored {
			txn = RestoreTxn("t", ps, Outcome(rng.IntN(3)))
		} else {
			txn = NewTxn("t", ps, timeout)
		}
		var (
			trace                       []string
			beginLogged, decisionLogged bool
			pendingLog                  string // "begin" or "decision"
			decided                     = Undecided
			yesBefore                   = map[string]bool{}
			acked                       = map[string]bool{}
			forgotten                   bool
			now                         = epoch
			deadline                    time.Time
		)
		if restored {
			beginLogged = true
			if d := txn.decision; d != Undecided {
				decided, decisionLogged = d, true
			}
		}
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d run %d: "+format+"\ntrace:\n%s", append([]any{seed, run}, append(args, strings.Join(trace, "\n"))...)...)
		}
		for range 40 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			p := names[rng.IntN(len(names))]
			var ev Event
			switch k := rng.IntN(8); k {
			case 0:
				ev = Event{Kind: EventStart}
			case 1:
				ev = Event{Kind: EventRecover}
			case 2, 3:
				ev = Event{Kind: EventLogged}
			case 4:
				ev = Event{Kind: EventVote, Participant: p, Yes: rng.IntN(5) > 0}
			case 5:
				ev = Event{Kind: EventNoAnswer, Participant: p}
			case 6:
				ev = Event{Kind: EventAck, Participant: p}
			default:
				ev = Event{Kind: EventTick}
			}
			ev.Now = now
			if ev.Kind == EventLogged && pendingLog == "" {
				continue // the runtime reports only the writes it was asked for
			}
			preparing := txn.State() == StatePreparing
			acts := txn.Step(ev)
			trace = append(trace, fmt.Sprintf("%v %s yes=%v at=%v -> %v", ev.Kind, ev.Participant, ev.Yes, now.Sub(epoch), acts))
			if ev.Kind == EventLogged {
				if pendingLog == "begin" {
					beginLogged = true
					deadline = now.Add(timeout)
				} else {
					decisionLogged = true
				}
				pendingLog = ""
			}
			if ev.Kind == EventVote && ev.Yes && txn.isParticipant(p) && now.Before(deadline) {
				yesBefore[p] = true
			}
			if ev.Kind == EventVote && !ev.Yes && preparing && txn.isParticipant(p) && now.Before(deadline) {
				acked[p] = true
			}
			for _, a := range acts {
				switch a.Kind {
				case ActionLogBegin:
					pendingLog = "begin"
				case ActionSendPrepare:
					if !beginLogged {
						fail("prepare before the begin record is durable")
					}
				case ActionLogDecision:
					if decided != Undecided {
						fail("second decision %v after %v", a.Outcome, decided)
					}
					if a.Outcome == Committed {
						for _, q := range ps {
							if !yesBefore[q] {
								fail("commit without a timely yes from %s", q)
							}
						}
					}
					decided = a.Outcome
					pendingLog = "decision"
				case ActionSendCommit, ActionSendAbort:
					if !decisionLogged {
						fail("%v before the decision is durable", a)
					}
					if (a.Kind == ActionSendCommit) != (decided == Committed) {
						fail("%v with decision %v", a, decided)
					}
				case ActionForget:
					if forgotten {
						fail("forget twice")
					}
					forgotten = true
				}
			}
			if ev.Kind == EventAck && decisionLogged && txn.isParticipant(p) {
				acked[p] = true
			}
			if forgotten {
				for _, q := range ps {
					if !acked[q] {
						fail("forget before %s acknowledged", q)
					}
				}
			}
		}
	}
}
