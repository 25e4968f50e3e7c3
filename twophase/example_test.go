package twophase_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/faultline-dev/faultline/twophase"
)

// openSQLite opens a SQLite file the way the package expects: WAL, a busy timeout, and
// immediate write transactions.
func openSQLite(dir, name string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name)+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	return db
}

// startBank opens a participant with one account.
func startBank(ctx context.Context, dir, name, account string, balance int64) *twophase.Participant {
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{Name: name, DB: openSQLite(dir, name+".db"), Dialect: twophase.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := p.Recover(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := p.Update(ctx, account, balance); err != nil {
		log.Fatal(err)
	}
	return p
}

// A transfer between two banks, each with its own database, in one process.
func ExampleCoordinator_Run() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "twophase-example")
	defer os.RemoveAll(dir)

	bankA := startBank(ctx, dir, "bank-a", "alice", 100)
	bankB := startBank(ctx, dir, "bank-b", "bob", 100)
	co, err := twophase.NewCoordinator(twophase.Config{
		DB: openSQLite(dir, "coordinator.db"), Dialect: twophase.SQLite,
		Participants: map[string]twophase.Resource{"bank-a": bankA, "bank-b": bankB},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := co.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := co.Recover(ctx); err != nil {
		log.Fatal(err)
	}

	for i, amount := range []int64{40, 500} {
		outcome, err := co.Run(ctx, fmt.Sprintf("tx-%d", i), map[string][]twophase.Op{
			"bank-a": {{Key: "alice", Delta: -amount}},
			"bank-b": {{Key: "bob", Delta: amount}},
		})
		if err != nil {
			log.Fatal(err)
		}
		alice, _ := bankA.Get(ctx, "alice")
		bob, _ := bankB.Get(ctx, "bob")
		fmt.Printf("transfer %d: %v; alice %d, bob %d\n", amount, outcome, alice, bob)
	}
	// Output:
	// transfer 40: committed; alice 60, bob 140
	// transfer 500: aborted; alice 60, bob 140
}

// The same over HTTP: each participant serves NewParticipantHandler, the coordinator reaches it
// with NewHTTPResource, and the participants ask the coordinator's NewDecisionHandler about
// in-doubt transactions through NewHTTPDecider.
func ExampleNewParticipantHandler() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "twophase-example")
	defer os.RemoveAll(dir)

	var servers []*http.Server
	defer func() {
		for _, srv := range servers {
			srv.Close()
		}
	}()
	serve := func(h http.Handler) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		servers = append(servers, srv)
		go srv.Serve(ln) //nolint:errcheck // returns http.ErrServerClosed at Close
		return "http://" + ln.Addr().String()
	}
	bankA := startBank(ctx, dir, "bank-a", "alice", 100)
	bankB := startBank(ctx, dir, "bank-b", "bob", 100)
	co, err := twophase.NewCoordinator(twophase.Config{
		DB: openSQLite(dir, "coordinator.db"), Dialect: twophase.SQLite,
		Participants: map[string]twophase.Resource{
			"bank-a": twophase.NewHTTPResource(serve(twophase.NewParticipantHandler(bankA)), nil),
			"bank-b": twophase.NewHTTPResource(serve(twophase.NewParticipantHandler(bankB)), nil),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := co.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	decider := twophase.NewHTTPDecider(serve(twophase.NewDecisionHandler(co)), nil)

	outcome, err := co.Run(ctx, "tx-1", map[string][]twophase.Op{
		"bank-a": {{Key: "alice", Delta: -25}},
		"bank-b": {{Key: "bob", Delta: 25}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// What an in-doubt participant would ask; a transaction the log does not hold is aborted.
	unknown, err := decider.Decision(ctx, "tx-never-started")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(outcome, unknown)
	// Output: committed aborted
}
