package integration

// End-to-end: the confit binary watching a real redis-server.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/redis/rueidis"
)

// redisAdmin returns a function running one command against addr; it
// retries for up to 15 s while the server restarts.
func redisAdmin(t *testing.T, addr string) func(args ...string) {
	t.Helper()
	cli, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	return func(args ...string) {
		t.Helper()
		var err error
		for range 60 {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			err = cli.Do(ctx, cli.B().Arbitrary(args[0]).Args(args[1:]...).Build()).Error()
			cancel()
			if err == nil {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
}

// TestDaemonRedisWatch: confit -watch -backend redis, with tracking and
// with keyspace notifications, re-renders on writes,
// hash fields, deletes and TTL expiry; after FLUSHALL a gets template
// renders empty and a getv template keeps its last file (confd's
// behaviour: no empty-render guard); across a graceful restart and a
// SIGKILL (which loses the writes since the last save) the files follow
// the store after the re-list, changes made while the watch reconnects
// included.
func TestDaemonRedisWatch(t *testing.T) {
	for _, watch := range []string{"tracking", "keyspace"} {
		t.Run(watch, func(t *testing.T) { testDaemonRedisWatch(t, watch) })
	}
}

// testDaemonRedisWatch is TestDaemonRedisWatch with -redis-watch watch
// (the server sends keyspace notifications; FLUSHALL is found by the
// check every -redis-poll-interval).
func testDaemonRedisWatch(t *testing.T, watch string) {
	s := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--notify-keyspace-events", "KEA"}})
	do := redisAdmin(t, s.Addr())
	out, confdir := t.TempDir(), t.TempDir()
	kvDest, nameDest := filepath.Join(out, "kv.conf"), filepath.Join(out, "name.conf")
	writeFiles(t, confdir, map[string]string{
		"conf.d/kv.toml":      resourceTOML("kv.tmpl", kvDest, "/w", "/"),
		"conf.d/name.toml":    resourceTOML("name.tmpl", nameDest, "/w", "/name"),
		"templates/kv.tmpl":   "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}{{range gets \"/*/*\"}}{{.Key}}={{.Value}}\n{{end}}",
		"templates/name.tmpl": "name={{getv \"/name\"}}\n",
	})
	do("SET", "/w/keep", "k")
	do("SET", "/w/name", "shop")
	d := startConfitDaemon(t, "-backend", "redis", "-node", s.Addr(), "-confdir", confdir, "-wait", "50ms:1s",
		"-redis-watch", watch, "-redis-poll-interval", "500ms")
	waitFile(t, kvDest, "keep=k\nname=shop\n")
	waitFile(t, nameDest, "name=shop\n")

	t.Run("set hash delete", func(t *testing.T) {
		do("SET", "/w/a", "1")
		waitFile(t, kvDest, "a=1\nkeep=k\nname=shop\n")
		do("HSET", "/w/h", "f", "v")
		waitFile(t, kvDest, "a=1\nkeep=k\nname=shop\n/h/f=v\n")
		do("DEL", "/w/a", "/w/h")
		waitFile(t, kvDest, "keep=k\nname=shop\n")
	})

	t.Run("TTL expiry", func(t *testing.T) {
		do("SET", "/w/ttl", "soon", "PX", "300")
		waitFile(t, kvDest, "keep=k\nname=shop\nttl=soon\n")
		waitFile(t, kvDest, "keep=k\nname=shop\n")
	})

	t.Run("FLUSHALL", func(t *testing.T) {
		do("FLUSHALL")
		waitFile(t, kvDest, "")
		waitFor(t, "the getv resource's render error", func() (bool, string) {
			return strings.Contains(d.log.String(), "/name"), "no error naming /name in the log"
		})
		if got := readFile(t, nameDest); got != "name=shop\n" {
			t.Errorf("name.conf after FLUSHALL = %q, want the last good file", got)
		}
		do("SET", "/w/keep", "k")
		do("SET", "/w/name", "shop2")
		waitFile(t, kvDest, "keep=k\nname=shop2\n")
		waitFile(t, nameDest, "name=shop2\n")
	})

	t.Run("graceful restart, a change while reconnecting", func(t *testing.T) {
		files := map[string]string{kvDest: readFile(t, kvDest), nameDest: readFile(t, nameDest)}
		if err := s.Stop(); err != nil { // by PID; saves the RDB
			t.Fatal(err)
		}
		stayUnchanged(t, d, files, 2*time.Second)
		waitFor(t, "/health 503 during the outage", func() (bool, string) {
			code, body, err := d.health()
			return err == nil && code == 503 && strings.Contains(body, "redis"), fmt.Sprintf("%d %q %v", code, body, err)
		})
		if err := s.Start(t.Context()); err != nil { // the same port
			t.Fatal(err)
		}
		do("SET", "/w/during", "reconnect")
		do("DEL", "/w/keep")
		waitFile(t, kvDest, "during=reconnect\nname=shop2\n")
		waitFor(t, "/health ok after the outage", func() (bool, string) {
			code, body, err := d.health()
			return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
		})
	})

	t.Run("SIGKILL loses unsaved writes: the re-list drops them", func(t *testing.T) {
		if err := s.Restart(t.Context()); err != nil { // saves what is there now
			t.Fatal(err)
		}
		do("SET", "/w/unsaved", "u")
		waitFile(t, kvDest, "during=reconnect\nname=shop2\nunsaved=u\n")
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFile(t, kvDest, "during=reconnect\nname=shop2\n")
		do("SET", "/w/after", "1")
		waitFile(t, kvDest, "after=1\nduring=reconnect\nname=shop2\n")
	})
}

// TestDaemonRedisManyResources: 200 resources on one prefix share one
// watch and one tracking connection; a change re-renders all 200.
func TestDaemonRedisManyResources(t *testing.T) {
	const n = 200
	s := testserver.Redis(t, testserver.RedisOptions{})
	do := redisAdmin(t, s.Addr())
	out, confdir := t.TempDir(), t.TempDir()
	files := map[string]string{"templates/v.tmpl": "{{getv \"/v\"}} {{len (ls \"/\")}}\n"}
	for i := range n {
		files[fmt.Sprintf("conf.d/r%03d.toml", i)] = resourceTOML("v.tmpl", filepath.Join(out, fmt.Sprintf("r%03d.conf", i)), "/many", "/")
	}
	writeFiles(t, confdir, files)
	do("SET", "/many/v", "0")
	startConfitDaemon(t, "-backend", "redis", "-node", s.Addr(), "-confdir", confdir)
	for i := range n {
		waitFile(t, filepath.Join(out, fmt.Sprintf("r%03d.conf", i)), "0 1\n")
	}
	for round := 1; round <= 3; round++ {
		do("SET", "/many/v", fmt.Sprint(round))
		do("SET", fmt.Sprintf("/many/k%d", round), "x")
		for i := range n {
			waitFile(t, filepath.Join(out, fmt.Sprintf("r%03d.conf", i)), fmt.Sprintf("%d %d\n", round, round+1))
		}
	}
	cli, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.Do(t.Context(), cli.B().ClientList().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(list, "flags=t"); got != 1 {
		t.Errorf("%d connections with CLIENT TRACKING, want 1:\n%s", got, list)
	}
}

// TestOnetimeHungRedis: a one-shot against a redis-server that accepts
// connections but never answers (SIGSTOP) exits 1 within the -timeout
// bound, naming the node, and writes nothing.
func TestOnetimeHungRedis(t *testing.T) {
	s := testserver.Redis(t, testserver.RedisOptions{})
	confdir, dest := oneResource(t)
	pid := s.Process().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	code, out, took := runOneShot(t, "-backend", "redis", "-node", s.Addr(), "-confdir", confdir, "-timeout", "3s")
	t.Logf("one-shot against a frozen redis-server: exit %d after %v: %s", code, took.Round(time.Millisecond), out)
	if code != 1 {
		t.Errorf("exit code = %d, want 1\n%s", code, out)
	}
	if took > oneShotBound {
		t.Errorf("one-shot took %v, want at most %v", took, oneShotBound)
	}
	for _, want := range []string{"redis", s.Addr(), "timed out", "/app", "-timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination written by a failed one-shot (stat: %v)", err)
	}
}

// TestOnetimeRedisPassword: confit against a redis-server with
// --requirepass: -password renders, confd's -client-key as the password
// renders with a WARN saying so, a wrong password exits 1 naming the node
// and leaves the file as it was. The password is in none of the output
// (debug logs included).
func TestOnetimeRedisPassword(t *testing.T) {
	const password = "pw-Rd9-not-in-output"
	s := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--requirepass", password}})
	adm, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, Password: password, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.Do(t.Context(), adm.B().Set().Key("/app/name").Value("shop").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in the output
	}{
		{"-password", []string{"-password", password}, 0, nil},
		{"-client-key", []string{"-client-key", password}, 0, []string{"WARNING redis: using -client-key as the Redis password"}},
		{"wrong password", []string{"-password", "wrong-" + password}, 1, []string{s.Addr(), "WRONGPASS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			confdir, dest := oneResource(t)
			if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-backend", "redis", "-node", s.Addr(), "-confdir", confdir, "-log-level", "debug"}, tc.args...)
			code, out, _ := runOneShot(t, args...)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not hold %q:\n%s", w, out)
				}
			}
			want := "name=shop\n"
			if tc.wantCode != 0 {
				want = "old\n"
			}
			if got := readFile(t, dest); got != want {
				t.Errorf("%s = %q, want %q", filepath.Base(dest), got, want)
			}
			if strings.Contains(out, password) {
				t.Errorf("the output holds the password:\n%s", out)
			}
		})
	}
}
