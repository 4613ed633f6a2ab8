package testserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ConsulVersion is the Consul agent version the tests use: the last open
// source release that builds from the module proxy (see shared/servers.md).
const ConsulVersion = "1.14.11"

// ConsulBinaryEnv names the environment variable that overrides the consul
// binary's path.
const ConsulBinaryEnv = "CONFIT_CONSUL_BIN"

// ConsulBinary returns the consul binary: $CONFIT_CONSUL_BIN, the cached
// build in .cache/servers/consul-<version>/consul, or a fresh build by
// scripts/servers/consul.sh (about 5 minutes). Errors wrap ErrUnavailable.
func ConsulBinary() (string, error) {
	return Binary(ConsulBinaryEnv, filepath.Join(".cache", "servers", "consul-"+ConsulVersion, "consul"),
		filepath.Join("scripts", "servers", "consul.sh"), 15*time.Minute)
}

// ConsulOptions configures StartConsul and Consul.
type ConsulOptions struct {
	// Dev runs "consul agent -dev": in-memory state, lost on Stop. The
	// default is a single persistent server (bootstrap_expect 1) whose data
	// survives Stop/Start, which restart tests need.
	Dev bool
	// ACLToken, when set, enables ACLs with default_policy "deny" and this
	// initial management token.
	ACLToken string
	// TLS, when set, also serves https on a second free port with these
	// files and requires client certificates signed by TLS.CA there (see
	// GenerateTLS). Plain http stays on Addr for setup and health.
	TLS *TLSFiles
	// Dir holds the data directory, the config and the log. Consul uses
	// t.TempDir() when empty; StartConsul makes and Close removes a
	// temporary directory.
	Dir string
	// MaxConnsPerClient, when set, replaces the agent's limit of 200
	// concurrent HTTP connections per client IP (http_max_conns_per_client),
	// so that a peer holding one connection per watch can be measured.
	MaxConnsPerClient int
}

// ConsulServer is a single Consul agent (also the server) on 127.0.0.1.
type ConsulServer struct {
	server
	addr   string
	https  string
	token  string
	client *http.Client // for the readiness checks
}

// StartConsul starts a Consul agent on free loopback ports (http on a free
// port, server and serf_lan on free ports, serf_wan, dns, grpc and
// grpc_tls off: -dev would otherwise bind grpc_tls on the fixed port 8503) and
// returns once it has a leader (and, with ACLs, accepts the management
// token). The caller must Close it.
func StartConsul(ctx context.Context, opts ConsulOptions) (*ConsulServer, error) {
	bin, err := ConsulBinary()
	if err != nil {
		return nil, err
	}
	s := &ConsulServer{
		token:  opts.ACLToken,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second},
	}
	dir, err := s.dataDir(opts.Dir, "confit-consul-")
	if err != nil {
		return nil, err
	}
	err = s.startRetrying(func(attempt int) error {
		ports, err := FreePorts(4)
		if err != nil {
			return fmt.Errorf("consul: %w", err)
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		cfg := map[string]any{
			"node_name":            "confit",
			"bind_addr":            "127.0.0.1",
			"client_addr":          "127.0.0.1",
			"advertise_addr":       "127.0.0.1",
			"log_level":            "warn",
			"disable_update_check": true,
			"ports": map[string]int{
				"http": ports[0], "server": ports[1], "serf_lan": ports[2],
				"serf_wan": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
			},
		}
		if opts.MaxConnsPerClient > 0 {
			cfg["limits"] = map[string]int{"http_max_conns_per_client": opts.MaxConnsPerClient}
		}
		if opts.TLS != nil {
			s.https = fmt.Sprintf("127.0.0.1:%d", ports[3])
			cfg["ports"].(map[string]int)["https"] = ports[3]
			cfg["tls"] = map[string]any{
				"defaults": map[string]string{"ca_file": opts.TLS.CA, "cert_file": opts.TLS.ServerCert, "key_file": opts.TLS.ServerKey},
				"https":    map[string]bool{"verify_incoming": true},
			}
		}
		args := []string{"agent"}
		if opts.Dev {
			args = append(args, "-dev")
		} else {
			cfg["server"] = true
			cfg["bootstrap_expect"] = 1
			cfg["data_dir"] = filepath.Join(dir, fmt.Sprintf("data%d", attempt))
			cfg["performance"] = map[string]int{"raft_multiplier": 1}
		}
		if opts.ACLToken != "" {
			cfg["acl"] = map[string]any{
				"enabled":        true,
				"default_policy": "deny",
				"tokens":         map[string]string{"initial_management": opts.ACLToken},
			}
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("config%d.json", attempt))
		data, _ := json.Marshal(cfg)
		if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
			return fmt.Errorf("consul: %w", err)
		}
		args = append(args, "-config-file", cfgPath)
		s.proc = &Process{
			Name:             "consul",
			Path:             bin,
			Args:             args,
			UnsetEnvPrefixes: []string{"CONSUL_"},
			LogPath:          filepath.Join(dir, "consul.log"),
			Ready:            s.consulReady,
		}
		return s.proc.Start(ctx)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Consul starts a Consul agent for t (see StartConsul) and stops it when t
// ends; the log is shown if t failed. A missing binary skips t locally and
// fails it in CI (see Unavailable).
func Consul(t testing.TB, opts ConsulOptions) *ConsulServer {
	t.Helper()
	return forTest(t, &opts.Dir, 16*time.Minute, func(ctx context.Context) (*ConsulServer, error) { return StartConsul(ctx, opts) })
}

// consulReady wants a leader and, with ACLs, a working management token.
func (s *ConsulServer) consulReady(ctx context.Context) error {
	body, err := s.consulGet(ctx, "/v1/status/leader")
	if err != nil {
		return err
	}
	if strings.Trim(strings.TrimSpace(body), `"`) == "" {
		return fmt.Errorf("no leader yet")
	}
	if s.token != "" {
		if _, err := s.consulGet(ctx, "/v1/acl/token/self"); err != nil {
			return err
		}
	}
	// KV answers once the server has applied its first entries.
	_, err = s.consulGet(ctx, "/v1/kv/?keys")
	if err != nil && !strings.Contains(err.Error(), "404") {
		return err
	}
	return nil
}

func (s *ConsulServer) consulGet(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return "", err
	}
	if s.token != "" {
		req.Header.Set("X-Consul-Token", s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// Addr returns the HTTP address, "127.0.0.1:PORT".
func (s *ConsulServer) Addr() string { return s.addr }

// HTTPSAddr returns the https address ("127.0.0.1:PORT") when started with
// TLS, else "".
func (s *ConsulServer) HTTPSAddr() string { return s.https }

// Token returns the management token, or "" without ACLs.
func (s *ConsulServer) Token() string { return s.token }
