package consul

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
)

func TestCommonParent(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		want     string
	}{
		{"none", nil, "/"},
		{"one", []string{"/app/foo"}, "/app/foo"},
		{"siblings", []string{"/app/foo", "/app/foobar"}, "/app"},
		{"nested", []string{"/app/foo/x", "/app/foo"}, "/app/foo"},
		{"disjoint", []string{"/a/x", "/b/y"}, "/"},
		{"root", []string{"/", "/a"}, "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := commonParent(tc.prefixes); got != tc.want {
				t.Errorf("commonParent(%q) = %q, want %q", tc.prefixes, got, tc.want)
			}
		})
	}
}

func TestKVListUnder(t *testing.T) {
	l := newKVList(map[string]string{
		"/app/foo": "1", "/app/foo/x": "2", "/app/foo/x/y": "3",
		"/app/foobar": "4", "/app/foo-x": "5", "/app/fo": "6", "/b": "7",
	})
	tests := []struct {
		prefix string
		want   []string
	}{
		{"/app/foo", []string{"/app/foo", "/app/foo/x", "/app/foo/x/y"}},
		{"/app/foo/x", []string{"/app/foo/x", "/app/foo/x/y"}},
		{"/app/f", nil},
		{"/", []string{"/app/fo", "/app/foo", "/app/foo-x", "/app/foo/x", "/app/foo/x/y", "/app/foobar", "/b"}},
	}
	for _, tc := range tests {
		got := slices.Sorted(maps.Keys(l.under(tc.prefix)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("under(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestJitterAndBackoff(t *testing.T) {
	for range 1000 {
		if d := retry.Spread(16*time.Minute, waitJitter); d < 15*time.Minute || d > 17*time.Minute {
			t.Fatalf("jittered wait of 16m = %v, want within ±1m", d)
		}
	}
}

func TestSourceFor(t *testing.T) {
	tests := []struct {
		prefix  string
		kind    sourceKind
		root    string
		wantErr bool
	}{
		{"/app", kindKV, "", false},
		{"/@service/web", kindService, "/@service/web", false},
		{"/@service/web/web-1", kindService, "/@service/web", false},
		{"/@service-any/web", kindServiceAny, "/@service-any/web", false},
		{"/@services", kindServices, "/@services", false},
		{"/@services/web", kindServices, "/@services", false},
		{"/@service", 0, "", true},
		{"/@servicex/web", kindKV, "", false},
	}
	for _, tc := range tests {
		s, err := sourceFor(tc.prefix)
		if (err != nil) != tc.wantErr {
			t.Errorf("sourceFor(%q) err = %v, wantErr %v", tc.prefix, err, tc.wantErr)
			continue
		}
		if err == nil && (s.kind != tc.kind || s.root != tc.root) {
			t.Errorf("sourceFor(%q) = kind %d root %q, want kind %d root %q", tc.prefix, s.kind, s.root, tc.kind, tc.root)
		}
	}
}

func TestRegistered(t *testing.T) {
	t.Setenv(EnvEmptyGrace, "2s")
	b, err := backends.New(context.Background(), backends.Spec{Backend: Name, Settings: backends.Settings{"node": {"127.0.0.1:1"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := b.(*Client)
	if c.opts.EmptyGrace != 2*time.Second {
		t.Errorf("EmptyGrace = %v, want 2s from %s", c.opts.EmptyGrace, EnvEmptyGrace)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvEmptyGrace, "soon")
	if _, err := backends.New(context.Background(), backends.Spec{Backend: Name}, nil); err == nil {
		t.Errorf("bad %s accepted", EnvEmptyGrace)
	}
}

func TestRequeryLimiter(t *testing.T) {
	l := newRequeryLimiter(50 * time.Millisecond)
	now := time.Unix(0, 0)
	for i := range requeryBurst {
		if w := l.take(now); w != 0 {
			t.Fatalf("take %d of a burst waits %s, want 0", i, w)
		}
	}
	if w := l.take(now); w != 50*time.Millisecond {
		t.Errorf("take after the burst waits %s, want 50ms", w)
	}
	// After a quiet second the bucket is full again.
	now = now.Add(2 * time.Second)
	if w := l.take(now); w != 0 {
		t.Errorf("take after quiet waits %s, want 0", w)
	}
}

// TestRequeryLimiterChurnOnly: on a fake clock, a re-query after a real
// change never waits and spends no token, even with the bucket empty; one
// after churn waits for a token.
func TestRequeryLimiterChurnOnly(t *testing.T) {
	l := newRequeryLimiter(50 * time.Millisecond)
	now := time.Unix(0, 0)
	for i := range 100 {
		if w := l.wait(now, false); w != 0 {
			t.Fatalf("re-query %d after a real change waits %s, want 0", i, w)
		}
	}
	for i := range requeryBurst {
		if w := l.wait(now, true); w != 0 {
			t.Fatalf("churn re-query %d of a burst waits %s, want 0 (real changes spent no token)", i, w)
		}
	}
	if w := l.wait(now, true); w != 50*time.Millisecond {
		t.Errorf("churn re-query after the burst waits %s, want 50ms", w)
	}
	if w := l.wait(now, false); w != 0 {
		t.Errorf("re-query after a real change with the bucket empty waits %s, want 0", w)
	}
}
