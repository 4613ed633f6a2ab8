package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/confit-dev/confit/backends"
)

// Name is the name the backend registers under.
const Name = "zookeeper"

// DefaultAddress is the server used when no -node is given.
const DefaultAddress = "127.0.0.1:2181"

// Options are the zookeeper backend's settings (see backends.Register): the
// shared network settings (-node repeatable, -username/-password for digest
// auth, -client-cert/-client-key/-client-ca-keys/-client-insecure for TLS)
// and the ones below, also settable as CONFIT_ZK_* variables, config
// file keys and [backend] table keys.
type Options struct {
	backends.Config

	// SessionTimeout is the ZooKeeper session timeout the client asks for
	// (the server clamps it to its minSessionTimeout..maxSessionTimeout,
	// 2 to 20 ticks by default). confd asks for 1 s, which a GC pause or a
	// busy server exceeds.
	SessionTimeout time.Duration `setting:"zk-session-timeout" default:"10s" usage:"zookeeper: session timeout"`
	// InteriorValues makes the data of znodes that have children values
	// too. By default only leaf znodes are values, as in confd.
	InteriorValues bool `setting:"zk-interior-values" usage:"zookeeper: also read the (non-empty) data of znodes that have children (confd reads leaves only)"`
}

// Validate reports settings that cannot work, before anything connects.
func (o *Options) Validate() error {
	if o.SessionTimeout < 0 {
		return errors.New("zookeeper: setting zk-session-timeout: must not be negative")
	}
	if _, _, err := splitNodes(o.Nodes); err != nil {
		return err
	}
	return nil
}

// splitNodes returns the server addresses of nodes ("host:port" or
// "host:port/chroot", an optional zk:// or tcp:// scheme, comma-separated
// lists allowed) and their common chroot ("" for none).
func splitNodes(nodes []string) (addrs []string, chroot string, err error) {
	first := true
	for _, n := range nodes {
		for _, part := range strings.Split(n, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			for _, scheme := range []string{"zk://", "zookeeper://", "tcp://"} {
				part = strings.TrimPrefix(part, scheme)
			}
			addr, root := part, ""
			if i := strings.IndexByte(part, '/'); i >= 0 {
				addr, root = part[:i], backends.CleanKey(part[i:])
				if root == "/" {
					root = ""
				}
			}
			if addr == "" {
				return nil, "", fmt.Errorf("zookeeper: node %q: no host:port", n)
			}
			if first {
				chroot, first = root, false
			} else if root != chroot {
				return nil, "", fmt.Errorf("zookeeper: node %q: chroot %q differs from the other nodes' %q", n, root, chroot)
			}
			addrs = append(addrs, addr)
		}
	}
	if len(addrs) == 0 {
		addrs = []string{DefaultAddress}
	}
	return addrs, chroot, nil
}

func init() {
	backends.Register(Name, func(ctx context.Context, o *Options, log *slog.Logger) (backends.Backend, error) {
		o.Config.Logger = log
		return New(ctx, *o)
	})
}
