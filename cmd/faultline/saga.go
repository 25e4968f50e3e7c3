package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", for postgres:// stores
	"github.com/spf13/cobra"
	_ "modernc.org/sqlite" // driver "sqlite", for SQLite stores

	"github.com/faultline-dev/faultline/saga"
)

// sagaNow is the time ages and durations are measured to; tests pin it.
var sagaNow = time.Now

// sagaPollInterval is how often --wait looks at the store.
var sagaPollInterval = 200 * time.Millisecond

// sagaStatuses are the saga statuses in the order the summary lists them.
var sagaStatuses = []saga.Status{
	saga.StatusRunning, saga.StatusCompensating, saga.StatusNeedsAttention,
	saga.StatusCompleted, saga.StatusCompensated, saga.StatusAborted,
}

// storeForms is what --store accepts, for error messages and help.
const storeForms = "sqlite:PATH, file:PATH, a path ending in .db, .sqlite or .sqlite3, or postgres://USER@HOST:PORT/DB (postgresql:// too)"

// sagaStoreFlags are the flags every saga command shares.
type sagaStoreFlags struct {
	store string
	table string
}

func (a *app) sagaCommand() *cobra.Command {
	sf := &sagaStoreFlags{}
	cmd := &cobra.Command{
		Use:   "saga",
		Short: "Inspect the sagas in an orchestrator's store; file retry and abort requests",
		Long: `Operator commands for the durable saga orchestrator (package saga, docs/saga.md). They read the
orchestrator's database directly: list and show never write; retry and abort file a request in the
saga's row that the running orchestrator carries out at its next poll (its PollInterval, 1s by
default), so they need no connection to the orchestrator itself.

--store is the orchestrator's database:
  sqlite:PATH, file:PATH, or a path ending in .db/.sqlite/.sqlite3   a SQLite file (must exist)
  postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=disable              PostgreSQL (postgresql:// too)
--table is the saga table (the orchestrator's Config.Table); its history is the table + "_log".

Statuses: running, compensating, needs-attention (parked: a compensation kept failing, a step
after the pivot was refused, or the pivot's outcome is unknown; it waits for retry or abort),
completed, compensated, aborted.

Exit codes: 0 ok; 1 --wait ended before the orchestrator acted, or it rejected the request; 2 usage
error, bad store, unknown saga, or a request the saga's state does not allow.`,
		Example: `  faultline saga list --store orders.db --status needs-attention
  faultline saga show order-1003 --store sqlite:/var/lib/orders/orders.db
  faultline saga retry order-1003 --store orders.db --wait 10s
  faultline saga abort order-1003 --store postgres://ops@db:5432/orders --reason "refunded by hand, ticket OPS-42"`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&sf.store, "store", "", "the orchestrator's database: "+storeForms)
	pf.StringVar(&sf.table, "table", saga.DefaultTable, "the saga table (history: TABLE_log)")
	cmd.AddCommand(a.sagaListCommand(sf), a.sagaShowCommand(sf), a.sagaRetryCommand(sf), a.sagaAbortCommand(sf))
	return cmd
}

// sagaOutput checks -o: the saga commands print text or JSON.
func (a *app) sagaOutput() error {
	if a.output != "text" && a.output != "json" {
		return usageErr("-o %s: faultline saga prints text or json", a.output)
	}
	return nil
}

// storeDSN is a parsed --store.
type storeDSN struct {
	driver  string // database/sql driver name
	source  string // its data source name
	dialect saga.Dialect
	path    string // SQLite: the file
	display string // for messages: the store as given, any password hidden
}

// parseStoreDSN reads --store.
func parseStoreDSN(s string) (storeDSN, error) {
	lower := strings.ToLower(s)
	switch {
	case s == "":
		return storeDSN{}, fmt.Errorf("--store is required: the orchestrator's database, %s", storeForms)
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		u, err := url.Parse(s)
		if err != nil {
			return storeDSN{}, fmt.Errorf("--store: bad PostgreSQL URL: %v", err)
		}
		return storeDSN{driver: "pgx", source: s, dialect: saga.Postgres, display: u.Redacted()}, nil
	}
	path := ""
	switch {
	case strings.HasPrefix(lower, "sqlite:"):
		path = s[len("sqlite:"):]
	case strings.HasPrefix(lower, "file:"):
		path = s[len("file:"):]
	case strings.Contains(s, "://"):
		return storeDSN{}, fmt.Errorf("--store %q: unknown kind of store; expected %s", s, storeForms)
	case hasSuffixFold(s, ".db"), hasSuffixFold(s, ".sqlite"), hasSuffixFold(s, ".sqlite3"):
		path = s
	default:
		return storeDSN{}, fmt.Errorf("--store %q: not a store this command knows; expected %s", s, storeForms)
	}
	if strings.HasPrefix(path, "//") { // sqlite:///abs/path, file:///abs/path
		path = path[2:]
	}
	if path == "" {
		return storeDSN{}, fmt.Errorf("--store %q: no file; expected %s", s, storeForms)
	}
	// A SQLite URI (SQLITE_OPEN_URI): mode=rw opens an existing database and never creates one.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return storeDSN{
		driver: "sqlite", source: "file:" + esc + "?mode=rw&_pragma=busy_timeout(5000)",
		dialect: saga.SQLite, path: path, display: s,
	}, nil
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// sagaStore is an open saga store.
type sagaStore struct {
	*saga.Store
	db    *sql.DB
	table string
	where string // the store, for messages
}

// openSagaStore opens --store and checks that it holds the saga tables.
func (a *app) openSagaStore(ctx context.Context, sf *sagaStoreFlags) (*sagaStore, error) {
	dsn, err := parseStoreDSN(sf.store)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if dsn.dialect == saga.SQLite {
		fi, err := os.Stat(dsn.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, inputErr(fmt.Errorf("no SQLite database at %s (--store %s): the file does not exist", dsn.path, dsn.display))
		case err != nil:
			return nil, inputErr(fmt.Errorf("--store %s: %w", dsn.display, err))
		case fi.IsDir():
			return nil, inputErr(fmt.Errorf("--store %s: %s is a directory, not a SQLite database", dsn.display, dsn.path))
		}
	}
	db, err := sql.Open(dsn.driver, dsn.source)
	if err != nil {
		return nil, inputErr(fmt.Errorf("--store %s: %w", dsn.display, err))
	}
	st, err := saga.NewStore(db, dsn.dialect, sf.table)
	if err != nil {
		db.Close()
		return nil, usageErr("--table: %v", err)
	}
	s := &sagaStore{Store: st, db: db, table: sf.table, where: dsn.display}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, inputErr(fmt.Errorf("cannot open store %s: %w", dsn.display, err))
	}
	hasSaga, hasLog, err := s.tablesExist(pctx, dsn.dialect)
	if err != nil {
		db.Close()
		return nil, inputErr(fmt.Errorf("cannot read store %s: %w", dsn.display, err))
	}
	if !hasSaga {
		db.Close()
		return nil, inputErr(fmt.Errorf("no saga table %q in %s: is this the orchestrator's database? see --table", sf.table, dsn.display))
	}
	if !hasLog {
		db.Close()
		return nil, inputErr(fmt.Errorf("saga table %q in %s has no history table %q: the orchestrator's Migrate creates both", sf.table, dsn.display, sf.table+"_log"))
	}
	return s, nil
}

// tablesExist reports whether the saga table and its history table exist.
func (s *sagaStore) tablesExist(ctx context.Context, d saga.Dialect) (bool, bool, error) {
	var hasSaga, hasLog bool
	if d == saga.Postgres {
		err := s.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL", s.table, s.table+"_log").Scan(&hasSaga, &hasLog)
		return hasSaga, hasLog, err
	}
	// The table name was checked by saga.NewStore: identifiers, optionally schema-qualified.
	master, name := "sqlite_master", s.table
	if schema, table, ok := strings.Cut(s.table, "."); ok {
		master, name = schema+".sqlite_master", table
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM "+master+" WHERE type = 'table' AND name IN (?, ?)", name, name+"_log")
	if err != nil {
		return false, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return false, false, err
		}
		hasSaga = hasSaga || n == name
		hasLog = hasLog || n == name+"_log"
	}
	return hasSaga, hasLog, rows.Err()
}

// get reads one saga; an unknown ID is an input error that names it.
func (s *sagaStore) get(ctx context.Context, id string) (*saga.State, error) {
	st, err := s.Get(ctx, id)
	if errors.Is(err, saga.ErrNotFound) {
		return nil, inputErr(fmt.Errorf("no saga %q in %s (table %s)", id, s.where, s.table))
	}
	return st, err
}

// sagaListItem is one saga in `saga list -o json`. The field names are documented in
// docs/saga-cli.md; add fields, never rename them.
type sagaListItem struct {
	ID     string      `json:"id"`
	Saga   string      `json:"saga"`
	Status saga.Status `json:"status"`
	// Steps are the steps in progress, or the step in trouble (see focusSteps).
	Steps     []string  `json:"steps"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	EndedAt   time.Time `json:"endedAt,omitzero"`
	Deadline  time.Time `json:"deadline,omitzero"`
	Reason    string    `json:"reason"`
	Version   int64     `json:"version"`
}

func (a *app) sagaListCommand(sf *sagaStoreFlags) *cobra.Command {
	var statuses []string
	var name string
	var limit int
	cmd := &cobra.Command{
		Use:   "list --store DSN [--status S,...] [--saga NAME] [--limit N]",
		Short: "List sagas, most recently updated first, with the counts by status",
		Long: `Lists the sagas in the store, most recently updated first: the ID, the saga (definition), the
status, the step in progress or in trouble, the age (since it started), when it last changed and
the reason it compensated, was parked or aborted. A last line counts every saga in the store by
status. -o json prints an array of objects (fields in docs/saga-cli.md).`,
		Example: `  faultline saga list --store orders.db
  faultline saga list --store orders.db --status needs-attention,compensating
  faultline saga list --store postgres://ops@db:5432/orders --saga order --limit 20
  faultline saga list --store orders.db --status needs-attention -o json | jq -r '.[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.sagaOutput(); err != nil {
				return err
			}
			f := saga.Filter{Saga: name, Limit: limit}
			if limit < 0 {
				return usageErr("--limit %d: want a positive number (0: the default of 100)", limit)
			}
			for _, s := range statuses {
				st := saga.Status(strings.TrimSpace(s))
				if !slices.Contains(sagaStatuses, st) {
					return usageErr("--status %q: unknown status; expected %s", s, joinStatuses(sagaStatuses))
				}
				f.Status = append(f.Status, st)
			}
			store, err := a.openSagaStore(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer store.db.Close()
			list, err := store.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			counts, err := store.Counts(cmd.Context())
			if err != nil {
				return err
			}
			items := make([]sagaListItem, 0, len(list))
			for _, st := range list {
				items = append(items, sagaListItem{
					ID: st.ID, Saga: st.Saga, Status: st.Status, Steps: focusSteps(st),
					CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt, EndedAt: st.EndedAt, Deadline: st.Deadline,
					Reason: st.Reason, Version: st.Version,
				})
			}
			shown := f.Limit
			if shown == 0 {
				shown = 100
			}
			return a.emit(items, func(w io.Writer) error {
				return writeSagaList(w, items, counts, len(list) == shown, store)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&statuses, "status", nil, "only sagas in these statuses (comma-separated): "+joinStatuses(sagaStatuses))
	fl.StringVar(&name, "saga", "", "only instances of this saga definition")
	fl.IntVar(&limit, "limit", 100, "at most this many sagas, the most recently updated")
	return cmd
}

func joinStatuses(ss []saga.Status) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

func writeSagaList(w io.Writer, items []sagaListItem, counts map[saga.Status]int, full bool, store *sagaStore) error {
	now := sagaNow()
	var b strings.Builder
	if len(items) == 0 {
		b.WriteString("no sagas match\n")
	} else {
		tw := newTable(&b)
		fmt.Fprintln(tw, "ID\tSAGA\tSTATUS\tSTEP\tAGE\tUPDATED\tREASON")
		for _, it := range items {
			step := "-"
			if len(it.Steps) > 0 {
				step = truncate(strings.Join(it.Steps, ","), 32)
			}
			reason := "-"
			if it.Reason != "" {
				reason = truncate(oneLine(it.Reason), 70)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", oneLine(it.ID), oneLine(it.Saga), it.Status, step,
				shortDuration(now.Sub(it.CreatedAt)), shortDuration(now.Sub(it.UpdatedAt)), reason)
		}
		tw.Flush()
	}
	b.WriteString("\n")
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		fmt.Fprintf(&b, "no sagas in %s (table %s)\n", store.where, store.table)
	} else {
		var parts []string
		for _, s := range orderedStatuses(counts) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
		noun := "sagas"
		if total == 1 {
			noun = "saga"
		}
		fmt.Fprintf(&b, "%d %s in the store: %s\n", total, noun, strings.Join(parts, ", "))
	}
	if full {
		fmt.Fprintf(&b, "showing the %d most recently updated that match; --limit shows more\n", len(items))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// orderedStatuses returns the statuses with a count, in sagaStatuses order, then any other.
func orderedStatuses(counts map[saga.Status]int) []saga.Status {
	var out, other []saga.Status
	for _, s := range sagaStatuses {
		if counts[s] > 0 {
			out = append(out, s)
		}
	}
	for s, n := range counts {
		if n > 0 && !slices.Contains(sagaStatuses, s) {
			other = append(other, s)
		}
	}
	slices.Sort(other)
	return append(out, other...)
}

// focusSteps names the steps a reader looks at first: the steps in progress of a running or
// compensating saga; the stuck step of a parked (or aborted) one; the step that failed of a
// compensated one. It reads only the step statuses the saga package records.
func focusSteps(st *saga.State) []string {
	var pick func(s *saga.StepState) bool
	active := func(s *saga.StepState) bool {
		return s.Status == saga.StepRunning || s.Status == saga.StepCompensating
	}
	switch st.Status {
	case saga.StatusRunning:
		pick = func(s *saga.StepState) bool { return s.Status == saga.StepRunning }
	case saga.StatusCompensating:
		pick = func(s *saga.StepState) bool { return s.Status == saga.StepCompensating }
	case saga.StatusNeedsAttention, saga.StatusAborted:
		pick = func(s *saga.StepState) bool { return active(s) && s.Error != "" }
	case saga.StatusCompensated:
		pick = func(s *saga.StepState) bool { return s.Status == saga.StepFailed }
	default:
		return []string{}
	}
	out := []string{}
	for i := range st.Steps {
		if pick(&st.Steps[i]) {
			out = append(out, st.Steps[i].Name)
		}
	}
	if len(out) == 0 && (st.Status == saga.StatusNeedsAttention || st.Status == saga.StatusAborted) {
		for i := range st.Steps {
			if active(&st.Steps[i]) {
				out = append(out, st.Steps[i].Name)
			}
		}
	}
	return out
}

// sagaShow is `saga show -o json`.
type sagaShow struct {
	Saga    *saga.State     `json:"saga"`
	History []saga.LogEntry `json:"history"`
}

func (a *app) sagaShowCommand(sf *sagaStoreFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID --store DSN",
		Short: "Show one saga: its state, every step, and its history",
		Long: `Shows one saga: its status, when it started and ended, its deadline and the reason it
compensated, was parked or aborted; a table of its steps (status, action and compensation
attempts, when each started relative to the saga, how long the action and the compensation
took, the last error); and its history, every event with its time since the saga started.
-o json prints {"saga": the saga's state, "history": its history} (docs/saga-cli.md).`,
		Example: `  faultline saga show order-1003 --store orders.db
  faultline saga show order-1003 --store postgres://ops@db:5432/orders --table checkout_saga
  faultline saga show order-1003 --store orders.db -o json | jq '.history[] | select(.event=="failed")'`,
		Args: exactArgs(1, "a saga ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.sagaOutput(); err != nil {
				return err
			}
			store, err := a.openSagaStore(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer store.db.Close()
			st, err := store.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			hist, err := store.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if hist == nil {
				hist = []saga.LogEntry{}
			}
			return a.emit(sagaShow{Saga: st, History: hist}, func(w io.Writer) error { return writeSagaShow(w, st, hist) })
		},
	}
}

// exactArgs wants n arguments, and says which when they are missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("%s wants %s, got %d arguments\nRun '%s --help' for usage.", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

func writeSagaShow(w io.Writer, st *saga.State, hist []saga.LogEntry) error {
	now := sagaNow()
	var b strings.Builder
	tw := newTable(&b)
	fmt.Fprintf(tw, "saga\t%s (%s)\n", oneLine(st.ID), oneLine(st.Saga))
	status := string(st.Status)
	if st.Status == saga.StatusNeedsAttention && st.ParkedFrom != "" {
		status += fmt.Sprintf(" (parked while %s; retry or abort it)", st.ParkedFrom)
	}
	if st.PivotPassed && !st.Status.Terminal() {
		status += " (past its pivot: it can only go forward)"
	}
	fmt.Fprintf(tw, "status\t%s\n", status)
	fmt.Fprintf(tw, "created\t%s (%s ago)\n", stamp(st.CreatedAt), shortDuration(now.Sub(st.CreatedAt)))
	if st.EndedAt.IsZero() {
		fmt.Fprintf(tw, "ended\t-\n")
		fmt.Fprintf(tw, "duration\t%s so far\n", shortDuration(now.Sub(st.CreatedAt)))
	} else {
		fmt.Fprintf(tw, "ended\t%s (%s ago)\n", stamp(st.EndedAt), shortDuration(now.Sub(st.EndedAt)))
		fmt.Fprintf(tw, "duration\t%s\n", shortDuration(st.EndedAt.Sub(st.CreatedAt)))
	}
	switch {
	case st.Deadline.IsZero():
		fmt.Fprintf(tw, "deadline\t-\n")
	case st.Status.Terminal():
		fmt.Fprintf(tw, "deadline\t%s\n", stamp(st.Deadline))
	case now.Before(st.Deadline):
		fmt.Fprintf(tw, "deadline\t%s (in %s)\n", stamp(st.Deadline), shortDuration(st.Deadline.Sub(now)))
	default:
		fmt.Fprintf(tw, "deadline\t%s (passed %s ago)\n", stamp(st.Deadline), shortDuration(now.Sub(st.Deadline)))
	}
	reason := "-"
	if st.Reason != "" {
		reason = oneLine(st.Reason)
	}
	fmt.Fprintf(tw, "reason\t%s\n", reason)
	if len(st.Input) > 0 {
		fmt.Fprintf(tw, "input\t%s\n", truncate(oneLine(string(st.Input)), 200))
	}
	fmt.Fprintf(tw, "updated\t%s (version %d)\n", stamp(st.UpdatedAt), st.Version)
	tw.Flush()

	b.WriteString("\n")
	tw = newTable(&b)
	fmt.Fprintln(tw, "STEP\tSTATUS\tACTION\tCOMPENSATION\tSTARTED\tTOOK\tCOMP TOOK\tERROR")
	for i := range st.Steps {
		s := &st.Steps[i]
		status := string(s.Status)
		if s.Refused {
			status += " (refused)"
		}
		if s.InFlight {
			status += fmt.Sprintf(" (%s attempt %d in flight)", s.Op, s.Attempt)
		} else if !s.RetryAt.IsZero() {
			status += fmt.Sprintf(" (%s attempt %d at +%s)", s.Op, s.Attempt+1, shortDuration(s.RetryAt.Sub(st.CreatedAt)))
		}
		started, took, compTook := "-", "-", "-"
		if !s.StartedAt.IsZero() {
			started = "+" + shortDuration(s.StartedAt.Sub(st.CreatedAt))
			took = span(s.StartedAt, s.EndedAt, now)
		}
		if !s.CompensationStarted.IsZero() {
			compTook = span(s.CompensationStarted, s.CompensationEnded, now)
		}
		errText := "-"
		if s.Error != "" {
			errText = truncate(oneLine(s.Error), 100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(s.Name), status, attempts(s.ActionAttempts), attempts(s.CompensationAttempts),
			started, took, compTook, errText)
	}
	tw.Flush()

	b.WriteString("\nHISTORY\n")
	writeHistory(&b, st.CreatedAt, hist)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHistory writes history entries as a table, each at its offset from the saga's creation.
func writeHistory(b *strings.Builder, created time.Time, hist []saga.LogEntry) {
	if len(hist) == 0 {
		b.WriteString("  (none)\n")
		return
	}
	tw := newTable(b)
	for _, e := range hist {
		step, op, attempt := "-", "-", "-"
		if e.Step != "" {
			step = oneLine(e.Step)
		}
		if e.Op != "" {
			op = string(e.Op)
		}
		if e.Attempt > 0 {
			attempt = fmt.Sprint(e.Attempt)
		}
		fmt.Fprintf(tw, "  +%s\t%s\t%s\t%s\t%s\t%s\n", shortDuration(e.At.Sub(created)), step, op, attempt, oneLine(e.Event), oneLine(e.Detail))
	}
	tw.Flush()
}

// newTable returns a tabwriter into b whose lines carry no trailing blanks (an empty last cell).
func newTable(b *strings.Builder) *tabwriter.Writer {
	return tabwriter.NewWriter(&trimWriter{b: b}, 0, 0, 2, ' ', 0)
}

// trimWriter drops the blanks at the end of each line written through it.
type trimWriter struct {
	b    *strings.Builder
	line []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != '\n' {
			t.line = append(t.line, c)
			continue
		}
		t.b.WriteString(strings.TrimRight(string(t.line), " "))
		t.b.WriteByte('\n')
		t.line = t.line[:0]
	}
	return len(p), nil
}

func attempts(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// span is how long something from start took: to end, or so far.
func span(start, end, now time.Time) string {
	if end.IsZero() {
		return shortDuration(now.Sub(start)) + " so far"
	}
	return shortDuration(end.Sub(start))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// shortDuration formats d compactly: 350ms, 4.2s, 3m5s, 55m, 2h10m, 3d4h.
func shortDuration(d time.Duration) string {
	if d < 0 {
		return "-" + shortDuration(-d)
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < 10*time.Minute:
		return d.Round(time.Second).String()
	}
	if d = d.Round(time.Minute); d < time.Hour {
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	if d < 48*time.Hour {
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// sagaRequestResult is what `saga retry` and `saga abort` print with -o json.
type sagaRequestResult struct {
	ID      string `json:"id"`
	Request string `json:"request"` // retry or abort
	Reason  string `json:"reason,omitempty"`
	// Outcome: filed (no --wait), changed (the orchestrator changed the saga), rejected (it
	// logged request-rejected), unchanged (--wait ended first; the request stays filed).
	Outcome string      `json:"outcome"`
	Status  saga.Status `json:"status"`
	Version int64       `json:"version"`
	// History is what the saga's history gained after the request was filed (with --wait).
	History  []saga.LogEntry `json:"history"`
	Rejected string          `json:"rejected,omitempty"`
}

func (a *app) sagaRetryCommand(sf *sagaStoreFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "retry ID --store DSN [--wait DURATION]",
		Short: "Ask the orchestrator to resume a needs-attention saga with a fresh attempt budget",
		Long: `Files a retry request for a needs-attention saga: the running orchestrator resumes it at its next
poll, trying the stuck step again (its action, or its compensation if the saga was compensating)
with a fresh attempt budget. Only a needs-attention saga can be retried.

The command returns as soon as the request is filed. With --wait it then watches the saga until
the orchestrator changes it, and prints the new status and what the history gained; exit code 1
when the wait ends first (the request stays filed) or the orchestrator rejected the request.`,
		Example: `  faultline saga retry order-1003 --store orders.db
  faultline saga retry order-1003 --store postgres://ops@db:5432/orders --wait 10s`,
		Args: exactArgs(1, "a saga ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sagaRequest(cmd.Context(), sf, args[0], "retry", "", wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "after filing, wait up to this long for the orchestrator to act (e.g. 10s)")
	return cmd
}

func (a *app) sagaAbortCommand(sf *sagaStoreFlags) *cobra.Command {
	var wait time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:   "abort ID --store DSN [--reason TEXT] [--wait DURATION]",
		Short: "Ask the orchestrator to compensate a running saga, or to end a parked one as aborted",
		Long: `Files an abort request: at its next poll the running orchestrator turns a running saga back (it
compensates the steps that ran), or ends a needs-attention saga as aborted, which says an operator
took over and set things right by hand. A saga past its pivot can only go forward, a compensating
one is already going back, and an ended one does not change: those are refused (exit 2). A saga
whose pivot is in progress is accepted here but refused by the orchestrator, which records a
request-rejected entry in the history (--wait shows it).
--reason is recorded in the saga's reason and history; say who and why.

The command returns as soon as the request is filed. With --wait it then watches the saga until
the orchestrator changes it, and prints the new status and what the history gained; exit code 1
when the wait ends first (the request stays filed) or the orchestrator rejected the request.`,
		Example: `  faultline saga abort order-1003 --store orders.db --reason "stock fixed by hand, ticket OPS-42"
  faultline saga abort order-1007 --store postgres://ops@db:5432/orders --reason "customer cancelled" --wait 10s`,
		Args: exactArgs(1, "a saga ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sagaRequest(cmd.Context(), sf, args[0], "abort", reason, wait)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the saga's reason and history")
	cmd.Flags().DurationVar(&wait, "wait", 0, "after filing, wait up to this long for the orchestrator to act (e.g. 10s)")
	return cmd
}

// sagaRequest files a retry or abort request and, with wait, watches for the orchestrator's answer.
func (a *app) sagaRequest(ctx context.Context, sf *sagaStoreFlags, id, kind, reason string, wait time.Duration) error {
	if err := a.sagaOutput(); err != nil {
		return err
	}
	if wait < 0 {
		return usageErr("--wait %v: want a positive duration, e.g. 10s", wait)
	}
	store, err := a.openSagaStore(ctx, sf)
	if err != nil {
		return err
	}
	defer store.db.Close()
	before, err := store.get(ctx, id)
	if err != nil {
		return err
	}
	hist, err := store.History(ctx, id)
	if err != nil {
		return err
	}
	if kind == "retry" {
		err = store.RequestRetry(ctx, id)
	} else {
		err = store.RequestAbort(ctx, id, reason)
	}
	switch {
	case errors.Is(err, saga.ErrNotFound):
		return inputErr(fmt.Errorf("no saga %q in %s (table %s)", id, store.where, store.table))
	case err != nil:
		return inputErr(fmt.Errorf("cannot %s: %w", kind, err))
	}
	res := sagaRequestResult{ID: id, Request: kind, Reason: reason, Outcome: "filed", Status: before.Status, Version: before.Version, History: []saga.LogEntry{}}
	what := "a retry request"
	if kind == "abort" {
		what = "an abort request"
		if reason != "" {
			what += fmt.Sprintf(" (reason: %q)", reason)
		}
	}
	if a.output == "text" {
		fmt.Fprintf(a.stdout, "filed %s for saga %s (%s, %s): the running orchestrator carries it out at its next poll\n",
			what, id, before.Saga, before.Status)
	}
	if wait == 0 {
		if a.output == "text" {
			table := ""
			if store.table != saga.DefaultTable {
				table = " --table " + store.table
			}
			fmt.Fprintf(a.stdout, "see the outcome with: faultline saga show %s --store %s%s\n", id, store.where, table)
		}
		return a.emit(res, func(io.Writer) error { return nil })
	}

	if !a.quiet && a.output == "text" {
		fmt.Fprintf(a.stderr, "waiting up to %v for the orchestrator...\n", wait)
	}
	now, err := a.awaitChange(ctx, store, id, before.Version, wait)
	if err != nil {
		return err
	}
	var outcome error
	if now == nil {
		res.Outcome = "unchanged"
		outcome = &exitError{code: exitFindings, err: fmt.Errorf("saga %s unchanged after %v: is the orchestrator running? The request stays filed and is carried out at its next poll",
			id, wait)}
	} else {
		res.Outcome, res.Status, res.Version = "changed", now.Status, now.Version
		all, err := store.History(ctx, id)
		if err != nil {
			return err
		}
		if len(all) > len(hist) {
			res.History = all[len(hist):]
		}
		for _, e := range res.History {
			if e.Event == "request-rejected" {
				res.Outcome, res.Rejected = "rejected", e.Detail
			}
		}
		if res.Rejected != "" {
			outcome = &exitError{code: exitFindings, err: fmt.Errorf("the orchestrator rejected the %s request: %s", kind, res.Rejected)}
		}
	}
	if err := a.emit(res, func(w io.Writer) error {
		if now == nil {
			return nil
		}
		var b strings.Builder
		fmt.Fprintf(&b, "saga %s is now %s (version %d → %d)", id, now.Status, before.Version, now.Version)
		if now.Reason != "" && now.Reason != before.Reason {
			fmt.Fprintf(&b, ": %s", oneLine(now.Reason))
		}
		b.WriteString("\n")
		if len(res.History) > 0 {
			b.WriteString("history since the request:\n")
			writeHistory(&b, now.CreatedAt, res.History)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}); err != nil {
		return err
	}
	return outcome
}

// awaitChange polls the saga until its version differs from version (returning its state) or
// wait passes (returning nil).
func (a *app) awaitChange(ctx context.Context, store *sagaStore, id string, version int64, wait time.Duration) (*saga.State, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(sagaPollInterval)
	defer tick.Stop()
	for {
		st, err := store.get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, usageErr("interrupted while waiting; the request stays filed")
			}
			return nil, err
		}
		if st.Version != version {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, usageErr("interrupted while waiting; the request stays filed")
		case <-deadline.C:
			// One last look: the orchestrator may have acted at the very end.
			if st, err := store.get(ctx, id); err == nil && st.Version != version {
				return st, nil
			}
			return nil, nil
		case <-tick.C:
		}
	}
}
