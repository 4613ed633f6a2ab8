package testserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisBinaryEnv names the environment variable that overrides the
// redis-server binary's path.
const RedisBinaryEnv = "CONFIT_REDIS_BIN"

// RedisBinary returns redis-server: $CONFIT_REDIS_BIN, or the path
// scripts/servers/redis.sh prints (it installs Debian's redis-server when
// missing). Errors wrap ErrUnavailable.
func RedisBinary() (string, error) {
	// No cached build: the script finds or installs the package.
	return Binary(RedisBinaryEnv, filepath.Join(".cache", "servers", "redis-none", "redis-server"),
		filepath.Join("scripts", "servers", "redis.sh"), 5*time.Minute)
}

// RedisOptions configures StartRedis and Redis.
type RedisOptions struct {
	// Dir holds the RDB file and the log (a temporary directory when
	// empty).
	Dir string
	// ExtraArgs are appended to redis-server's command line
	// ("--requirepass", "secret").
	ExtraArgs []string
	// Sentinel, when set, starts a Sentinel (redis-server --sentinel)
	// monitoring Sentinel.Master as Sentinel.Name, instead of a server.
	Sentinel *SentinelOptions
	// TLS, when set, adds a TLS port (SecureAddr) beside the plain one,
	// serving TLS.ServerCert; with ClientAuth the server demands a client
	// certificate signed by TLS.CA.
	TLS        *TLSFiles
	ClientAuth bool
}

// SentinelOptions configures a Sentinel: the master it monitors, with a
// quorum of 1 and a down-after of one second so that a test fails over
// quickly.
type SentinelOptions struct {
	Name   string // the master set's name ("mymaster")
	Master string // the master's "127.0.0.1:PORT"
}

// RedisServer is a standalone redis-server on 127.0.0.1. It saves its data
// on a graceful stop, so Restart keeps it.
type RedisServer struct {
	server
	addr       string
	secureAddr string
}

// SecureAddr is the TLS port's "127.0.0.1:port" (RedisOptions.TLS), ""
// without one.
func (s *RedisServer) SecureAddr() string { return s.secureAddr }

// StartRedis starts redis-server (or a Sentinel, see
// RedisOptions.Sentinel) on a free loopback port and returns once it
// answers PING. The caller must Close it.
func StartRedis(ctx context.Context, opts RedisOptions) (*RedisServer, error) {
	bin, err := RedisBinary()
	if err != nil {
		return nil, err
	}
	s := &RedisServer{}
	dir, err := s.dataDir(opts.Dir, "confit-redis-")
	if err != nil {
		return nil, err
	}
	err = s.startRetrying(func(attempt int) error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{
			"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
			"--dir", dir, "--dbfilename", fmt.Sprintf("dump%d.rdb", attempt),
			"--save", "3600 1", "--appendonly", "no", "--daemonize", "no",
			"--protected-mode", "no", "--loglevel", "warning",
		}
		if so := opts.Sentinel; so != nil {
			// A Sentinel rewrites its configuration file: one per attempt.
			host, mport, _ := strings.Cut(so.Master, ":")
			conf := filepath.Join(dir, fmt.Sprintf("sentinel%d.conf", attempt))
			text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\nsentinel down-after-milliseconds %[1]s 1000\n"+
				"sentinel failover-timeout %[1]s 10000\n", so.Name, host, mport)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				return err
			}
			args = append([]string{conf, "--sentinel"}, args[:4]...)
			args = append(args, "--dir", dir, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice")
		}
		if opts.TLS != nil {
			tport, err := FreePort()
			if err != nil {
				return err
			}
			s.secureAddr = fmt.Sprintf("127.0.0.1:%d", tport)
			auth := "no"
			if opts.ClientAuth {
				auth = "yes"
			}
			args = append(args, "--tls-port", fmt.Sprint(tport), "--tls-cert-file", opts.TLS.ServerCert,
				"--tls-key-file", opts.TLS.ServerKey, "--tls-ca-cert-file", opts.TLS.CA, "--tls-auth-clients", auth)
		}
		args = append(args, opts.ExtraArgs...)
		s.proc = &Process{
			Name:        "redis",
			Path:        bin,
			Args:        args,
			LogPath:     filepath.Join(dir, "redis.log"),
			Ready:       redisPing(s.addr),
			StopTimeout: 5 * time.Second,
		}
		return s.proc.Start(ctx)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Redis starts redis-server for t (see StartRedis) and stops it when t
// ends; the log is shown if t failed.
func Redis(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	return forTest(t, &opts.Dir, 6*time.Minute, func(ctx context.Context) (*RedisServer, error) { return StartRedis(ctx, opts) })
}

// redisPing returns a readiness check: PING answered (+PONG, or -NOAUTH
// when a password is required: the server is up either way).
func redisPing(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
			return fmt.Errorf("PING %s: %q", addr, strings.TrimSpace(line))
		}
		return nil
	}
}

// Addr returns "127.0.0.1:PORT".
func (s *RedisServer) Addr() string { return s.addr }
