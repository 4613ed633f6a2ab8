package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeperJarEnv names the environment variable that overrides the path of
// zookeeper.jar (whose manifest names the jars it needs).
const ZooKeeperJarEnv = "CONFIT_ZOOKEEPER_JAR"

// ZooKeeperJar returns zookeeper.jar: $CONFIT_ZOOKEEPER_JAR, Debian's
// /usr/share/java/zookeeper.jar, or the one scripts/servers/zookeeper.sh
// installs (apt, about 35 s cold). Java must be on PATH. Errors wrap
// ErrUnavailable.
func ZooKeeperJar() (string, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Errorf("%w: zookeeper: java not on PATH", ErrUnavailable)
	}
	if p := os.Getenv(ZooKeeperJarEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrUnavailable, ZooKeeperJarEnv, p, err)
		}
		return p, nil
	}
	const debian = "/usr/share/java/zookeeper.jar"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	// Binary runs the script (the env variable and cache path are already
	// ruled out above: the cache path is never there).
	return Binary(ZooKeeperJarEnv, filepath.Join(".cache", "servers", "zookeeper-apt", "none"),
		filepath.Join("scripts", "servers", "zookeeper.sh"), 10*time.Minute)
}

// ZooKeeperOptions configures StartZooKeeper and ZooKeeper.
type ZooKeeperOptions struct {
	// Dir holds the data directory, zoo.cfg and the log. ZooKeeper uses
	// t.TempDir() when empty; StartZooKeeper makes and Close removes a
	// temporary directory.
	Dir string
	// TickTime is ZooKeeper's tick (default 500ms); sessions may be as
	// short as two ticks.
	TickTime time.Duration
	// TLS, when set, adds a TLS client port (SecureAddr) beside the plain
	// one: the server presents TLS.ServerCert and, with ClientAuth, wants
	// a client certificate signed by TLS.CA. ZooKeeper then runs its
	// Netty connection factory, reading the PEM files as they are.
	TLS        *TLSFiles
	ClientAuth bool
}

// ZooKeeperServer is a standalone ZooKeeper on 127.0.0.1.
type ZooKeeperServer struct {
	server
	addr       string
	secureAddr string
}

// StartZooKeeper starts ZooKeeper (java, standalone, admin server off) on a
// free loopback port with a fresh data directory and returns once the srvr
// four-letter word answers "Mode: standalone". The caller must Close it.
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeperServer, error) {
	jar, err := ZooKeeperJar()
	if err != nil {
		return nil, err
	}
	tick := opts.TickTime
	if tick <= 0 {
		tick = 500 * time.Millisecond
	}
	s := &ZooKeeperServer{}
	dir, err := s.dataDir(opts.Dir, "confit-zookeeper-")
	if err != nil {
		return nil, err
	}
	err = s.startRetrying(func(attempt int) error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", port)
		data := filepath.Join(dir, fmt.Sprintf("data%d", attempt))
		cfg := filepath.Join(dir, fmt.Sprintf("zoo%d.cfg", attempt))
		lines := []string{
			fmt.Sprintf("tickTime=%d", tick.Milliseconds()),
			"dataDir=" + data,
			fmt.Sprintf("clientPort=%d", port),
			"clientPortAddress=127.0.0.1",
			"admin.enableServer=false", // else Jetty binds 0.0.0.0:8080
			"4lw.commands.whitelist=srvr,ruok,wchs,wchc,cons,mntr",
			"forceSync=no",
			"maxClientCnxns=0",
		}
		classpath := jar
		if opts.TLS != nil {
			tlsLines, err := s.tlsConf(dir, attempt, opts)
			if err != nil {
				return err
			}
			lines = append(lines, tlsLines...)
			// Debian's zookeeper.jar leaves netty-codec, which the Netty
			// factory needs, out of its manifest's Class-Path.
			classpath += ":" + filepath.Join(filepath.Dir(jar), "netty-codec.jar")
		}
		conf := strings.Join(append(lines, ""), "\n")
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return fmt.Errorf("zookeeper: %w", err)
		}
		s.proc = &Process{
			Name:             "zookeeper",
			Path:             "java",
			Args:             []string{"-Xmx256m", "-XX:+UseSerialGC", "-cp", classpath, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg},
			UnsetEnvPrefixes: []string{"JVMFLAGS", "ZOO", "JAVA_TOOL_OPTIONS"},
			LogPath:          filepath.Join(dir, "zookeeper.log"),
			Ready:            s.ready,
			StopTimeout:      3 * time.Second,
		}
		err = s.proc.Start(ctx)
		if err != nil && strings.Contains(s.proc.LogTail(40), "Address already in use") {
			err = fmt.Errorf("%w (address already in use)", err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// tlsConf writes the server's PEM key store (key and certificate in one
// file) and returns the zoo.cfg lines of a TLS client port on a free
// loopback port, which it records as s.secureAddr.
func (s *ZooKeeperServer) tlsConf(dir string, attempt int, opts ZooKeeperOptions) ([]string, error) {
	key, err := os.ReadFile(opts.TLS.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	cert, err := os.ReadFile(opts.TLS.ServerCert)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	store := filepath.Join(dir, fmt.Sprintf("keystore%d.pem", attempt))
	if err := os.WriteFile(store, append(key, cert...), 0o600); err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s.secureAddr = fmt.Sprintf("127.0.0.1:%d", port)
	auth := "none"
	if opts.ClientAuth {
		auth = "need"
	}
	return []string{
		fmt.Sprintf("secureClientPort=%d", port),
		"secureClientPortAddress=127.0.0.1",
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"ssl.keyStore.location=" + store,
		"ssl.keyStore.type=PEM",
		"ssl.trustStore.location=" + opts.TLS.CA,
		"ssl.trustStore.type=PEM",
		"ssl.clientAuth=" + auth,
	}, nil
}

// SecureAddr is the TLS client port's "127.0.0.1:port" (ZooKeeperOptions.TLS),
// "" without one.
func (s *ZooKeeperServer) SecureAddr() string { return s.secureAddr }

// ZooKeeper starts ZooKeeper for t (see StartZooKeeper) and stops it when
// t ends; the log is shown if t failed. A missing server skips t locally
// and fails it in CI (see Unavailable).
func ZooKeeper(t testing.TB, opts ZooKeeperOptions) *ZooKeeperServer {
	t.Helper()
	return forTest(t, &opts.Dir, 11*time.Minute, func(ctx context.Context) (*ZooKeeperServer, error) { return StartZooKeeper(ctx, opts) })
}

func (s *ZooKeeperServer) ready(ctx context.Context) error {
	out, err := s.FourLetter(ctx, "srvr")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Mode: standalone") {
		return fmt.Errorf("srvr: %q", out)
	}
	return nil
}

// FourLetter sends one of ZooKeeper's four-letter words (srvr, ruok, wchs,
// wchc, cons, mntr) and returns the answer.
func (s *ZooKeeperServer) FourLetter(ctx context.Context, word string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := conn.Write([]byte(word)); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%s: empty answer", word)
	}
	return b.String(), nil
}

// Watches returns the number of watches the server holds, data, child
// and exists watches of every session (mntr's zk_watch_count; wchs counts
// data watches only).
func (s *ZooKeeperServer) Watches(ctx context.Context) (int, error) {
	out, err := s.FourLetter(ctx, "mntr")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "zk_watch_count\t"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("zookeeper: mntr: %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("zookeeper: mntr: no zk_watch_count in %q", out)
}

// Pause stops the server process with SIGSTOP (it keeps its sockets but
// answers nothing, as a hung server or a long GC pause would); Resume
// continues it.
func (s *ZooKeeperServer) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (s *ZooKeeperServer) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *ZooKeeperServer) signal(sig syscall.Signal) error {
	pid := s.proc.PID()
	if pid == 0 {
		return fmt.Errorf("zookeeper: not running")
	}
	return syscall.Kill(pid, sig)
}

// Addr returns the client address, "127.0.0.1:PORT".
func (s *ZooKeeperServer) Addr() string { return s.addr }

// ZooKeeperPut sets key to value, creating it and its missing parents (with
// no data) as needed: how the tests and benches write a confit key.
func ZooKeeperPut(c *zk.Conn, key, value string) error {
	if _, err := c.Set(key, []byte(value), -1); !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	parts := strings.Split(strings.TrimPrefix(key, "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		var data []byte
		if i == len(parts)-1 {
			data = []byte(value)
		}
		if _, err := c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	_, err := c.Set(key, []byte(value), -1)
	return err
}
