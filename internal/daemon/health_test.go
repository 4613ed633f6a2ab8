package daemon

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
)

// /health: "ok" when nothing fails, else 503 and one line per failing
// thing, sorted, a resource's error (which names the resource already)
// said once.
func TestHealthBody(t *testing.T) {
	tests := []struct {
		name     string
		set      map[healthKey]error
		wantCode int
		want     string
	}{
		{"healthy", nil, 200, "ok\n"},
		{
			"one backend",
			map[healthKey]error{backendHealth(newStore("etcd", "etcd")): errors.New("connection refused")},
			503, "backend etcd: connection refused\n",
		},
		{
			"resource error named once",
			map[healthKey]error{resourceHealth("web.toml"): errors.New("resource web.toml: render web.tmpl:1: boom")},
			503, "resource web.toml: render web.tmpl:1: boom\n",
		},
		{
			"every kind",
			map[healthKey]error{
				watchHealth(newStore("consul", "consul"), "/app"):  errors.New("permission denied"),
				resourceHealth("a.toml"):                           errors.New("check_cmd: exit status 1"),
				backendHealth(newStore("etcd", "etcd")):            errors.New("connection refused"),
				watchHealth(newStore("consul", "consul"), "/@svc"): errors.New("watch limit"),
			},
			503,
			"backend etcd: connection refused\n" +
				"resource a.toml: check_cmd: exit status 1\n" +
				"watch consul /@svc: watch limit\n" +
				"watch consul /app: permission denied\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealth()
			for k, err := range tc.set {
				h.set(k, err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.want {
				t.Errorf("/health = %d %q, want %d %q", rec.Code, rec.Body, tc.wantCode, tc.want)
			}
		})
	}
}

// set reports changes of state (and of reason) only, so that callers log
// once per change.
func TestHealthSetReportsChanges(t *testing.T) {
	h := newHealth()
	k := watchHealth(newStore("etcd", "etcd"), "/app")
	for i, step := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("down"), true},
		{errors.New("down"), false},
		{errors.New("still down, differently"), true},
		{nil, true},
		{nil, false},
	} {
		if got := h.set(k, step.err); got != step.want {
			t.Errorf("step %d: set(%v) = %v, want %v", i, step.err, got, step.want)
		}
	}
}

// forgetResources forgets resources not kept, and nothing else: a backend
// and a watch named like a resource stay.
func TestHealthForgetResources(t *testing.T) {
	h := newHealth()
	down := errors.New("down")
	for _, k := range []healthKey{
		resourceHealth("gone.toml"), resourceHealth("kept.toml"),
		backendHealth(newStore("gone.toml", "gone.toml")), watchHealth(newStore("gone.toml", "gone.toml"), "/"),
	} {
		h.set(k, down)
	}
	h.forgetResources(map[string]bool{"kept.toml": true})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	want := "backend gone.toml: down\nresource kept.toml: down\nwatch gone.toml /: down\n"
	if rec.Body.String() != want {
		t.Errorf("/health after forgetResources = %q, want %q", rec.Body, want)
	}
}

// The pool's key of a backend configuration, which the engine logs and
// keys its stores by, holds no setting value in clear: not a password.
func TestPoolKeyHoldsNoSecret(t *testing.T) {
	const secret = "s3cr3t-pa55"
	spec := backends.Spec{Backend: "etcd", Settings: backends.Settings{
		"nodes": {"127.0.0.1:2379"}, "username": {"admin"}, "password": {secret},
	}}
	p := newPool(backends.Spec{Backend: "env"})
	for name, key := range map[string]string{"[backend] table": p.key(&spec), "default": newPool(spec).key(nil)} {
		if strings.Contains(key, secret) || strings.Contains(key, "admin") {
			t.Errorf("%s: pool key %q holds a setting value", name, key)
		}
	}
	other := spec
	other.Settings = backends.Settings{"nodes": {"127.0.0.1:2379"}, "username": {"admin"}, "password": {"another"}}
	if p.key(&spec) == p.key(&other) {
		t.Error("two passwords, one pool key: the clients would be shared")
	}
}

// Two clients of one backend (two etcd configurations: two pool keys) are
// two things: one recovering does not clear the other's failure.
func TestHealthTwoClientsOfOneBackend(t *testing.T) {
	h := newHealth()
	a, b := newStore("etcd|a", "etcd"), newStore("etcd|b", "etcd")
	h.set(backendHealth(a), errors.New("connection refused"))
	h.set(backendHealth(b), nil)
	h.set(watchHealth(a, "/app"), errors.New("watch lost"))
	h.set(watchHealth(b, "/app"), nil)
	if n := h.count(); n != 2 {
		t.Errorf("failing: %d things, want 2 (client a's backend and watch)", n)
	}
}
