package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/confit-dev/confit/backends"
)

// Options are the redis backend's settings beyond the shared network ones
// (see backends.Register): -separator, -redis-watch, -redis-poll-interval
// and -redis-sentinel-master, their config-file keys, CONFIT_* variables
// and [backend] table keys.
type Options struct {
	// Separator replaces "/" in keys, confd's -separator: with ":" the key
	// /app/db/url is the Redis key app:db:url (the leading "/" dropped).
	Separator string `setting:"separator" default:"/" usage:"redis: separator replacing / in keys (the leading / is dropped when it is not /)"`
	// Watch is how a watch learns of changes: WatchTracking (the
	// default), WatchKeyspace or WatchPoll. See Client.Watch for the
	// fallbacks.
	Watch string `setting:"redis-watch" default:"tracking" usage:"redis: how a watch learns of changes: tracking (CLIENT TRACKING, no server setup), keyspace (keyspace notifications: the server needs notify-keyspace-events KEA or K/E with g$hxe) or poll (a re-read every -redis-poll-interval)"`
	// SentinelMaster, when set, is the master set's name to ask Sentinel
	// for: the nodes are then Sentinels, and the client follows the
	// master they name across failovers.
	SentinelMaster string `setting:"redis-sentinel-master" usage:"redis: the master set name to ask Sentinel for; -node then lists the Sentinels (host:port, /db on the first)"`
	// PollInterval is how often a watch re-lists its prefix when the
	// server offers no change notifications (CLIENT TRACKING refused and
	// keyspace notifications off, or Watch is WatchPoll), and how often a
	// keyspace watch checks for FLUSHALL/FLUSHDB/SWAPDB (which send no
	// keyspace notification).
	PollInterval time.Duration `setting:"redis-poll-interval" default:"10s" usage:"redis: how often a watch re-reads its prefix when the server cannot push changes (and a keyspace watch checks for FLUSHALL)"`
}

// The values of Options.Watch.
const (
	WatchTracking = "tracking"
	WatchKeyspace = "keyspace"
	WatchPoll     = "poll"
)

// Validate rejects an empty separator, an unknown watch mechanism and a
// non-positive poll interval.
func (o *Options) Validate() error {
	if o.Separator == "" {
		return errors.New("redis: -separator is empty")
	}
	switch o.Watch {
	case "", WatchTracking, WatchKeyspace, WatchPoll:
	default:
		return fmt.Errorf("redis: -redis-watch %q: want tracking, keyspace or poll", o.Watch)
	}
	if o.PollInterval <= 0 {
		return errors.New("redis: -redis-poll-interval must be positive")
	}
	return nil
}

// settings are what a user sets for -backend redis: the shared network
// settings and the redis ones.
type settings struct {
	backends.Config
	Options
}

func init() {
	backends.Register(Name, func(ctx context.Context, s *settings, log *slog.Logger) (backends.Backend, error) {
		s.Config.Logger = log
		return New(ctx, s.Config, s.Options)
	})
}
