package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/ctrip-pay/pipeline/shared/postgres"
)

// cluster is the Postgres server tests create their databases on: the one named by
// TEST_DATABASE_URL or DATABASE_URL, or else a private cluster started once per test binary.
var cluster struct {
	once     sync.Once
	adminURL string
	err      error
	stop     func()
}

// Main wraps testing.M.Run so that a private cluster started by this package is stopped when the
// package's tests end, and a nats-server binary built for them removed. Use it in TestMain:
// func TestMain(m *testing.M) { testkit.Main(m) }.
func Main(m interface{ Run() int }) {
	code := m.Run()
	if cluster.stop != nil {
		cluster.stop()
	}
	RemoveBuiltNATSServer()
	os.Exit(code)
}

// MustDatabaseURL creates an empty throwaway database and returns its URL; it is dropped at
// test cleanup.
func MustDatabaseURL(tb testing.TB) string {
	tb.Helper()
	cluster.once.Do(func() { cluster.adminURL, cluster.stop, cluster.err = findOrStartCluster() })
	if cluster.err != nil {
		tb.Fatalf("postgres for tests: %v", cluster.err)
	}
	admin, err := sqlx.Open("postgres", cluster.adminURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		a, err := sqlx.Open("postgres", cluster.adminURL)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(cluster.adminURL)
	u.Path = "/" + name
	return u.String()
}

// MustDB returns a connection to a fresh, migrated database, and its URL.
func MustDB(tb testing.TB) (*sqlx.DB, string) {
	tb.Helper()
	dsn := MustDatabaseURL(tb)
	return MustOpenDB(tb, dsn), dsn
}

// MustOpenDB connects to the database at url and applies the migrations; the connection is
// closed at test cleanup. For a database on a server of the test's own (MustPostgresCluster).
func MustOpenDB(tb testing.TB, url string) *sqlx.DB {
	tb.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := postgres.Migrate(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		tb.Fatal(err)
	}
	return db
}

// Count runs a query that returns one integer (a count, a sum) and returns it.
func Count(tb testing.TB, db *sqlx.DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		tb.Fatal(err)
	}
	return n
}

func findOrStartCluster() (string, func(), error) {
	for _, v := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if u := os.Getenv(v); u != "" {
			return u, nil, nil
		}
	}
	return StartPostgres()
}

// StartPostgres runs initdb + pg_ctl in a temp dir on a free port and returns the URL of its
// postgres database and a function that stops and removes it. Postgres refuses to run as root,
// so as root the cluster is owned by and started as the postgres user. The dev stack uses it too.
func StartPostgres() (string, func(), error) {
	c, err := StartPostgresCluster()
	if err != nil {
		return "", nil, err
	}
	return c.URL, c.Remove, nil
}

// PostgresCluster is a private Postgres server that a test can stop and start again (same port,
// same data), as an outage of the database.
type PostgresCluster struct {
	URL    string // of the postgres database
	dir    string
	data   string
	opts   string
	asUser func(name string, args ...string) *exec.Cmd
}

// StartPostgresCluster creates and starts a private cluster on a free port.
func StartPostgresCluster() (*PostgresCluster, error) {
	dir, err := os.MkdirTemp("", "ctrip-pg-")
	if err != nil {
		return nil, err
	}
	c := &PostgresCluster{dir: dir, data: filepath.Join(dir, "data"),
		asUser: func(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		c.asUser = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	if out, err := c.asUser("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	c.opts = fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, dir)
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// Start starts a stopped cluster and waits until it accepts connections.
func (c *PostgresCluster) Start() error {
	if out, err := c.asUser("pg_ctl", "-D", c.data, "-o", c.opts, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return nil
}

// Stop stops the server ("fast": sessions are cut at once, as in a restart). Not "immediate":
// the cluster runs with synchronous_commit=off, and an immediate stop would lose the last commits.
func (c *PostgresCluster) Stop() error { return c.stop("fast") }

func (c *PostgresCluster) stop(mode string) error {
	if out, err := c.asUser("pg_ctl", "-D", c.data, "-m", mode, "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Remove stops the server and deletes its data.
func (c *PostgresCluster) Remove() {
	_ = c.stop("immediate")
	os.RemoveAll(c.dir)
}

// MustPostgresCluster starts a private cluster of the test's own, removed at cleanup.
func MustPostgresCluster(tb testing.TB) *PostgresCluster {
	tb.Helper()
	c, err := StartPostgresCluster()
	if err != nil {
		tb.Fatalf("postgres cluster: %v", err)
	}
	tb.Cleanup(c.Remove)
	return c
}
