//go:build !confit_no_consul

package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/consul"
	"github.com/hashicorp/consul/api"
)

func init() { openers["consul"] = openConsul }

// consulSession registers services with the local Consul agent, each with
// one TTL check that confit passes every TTL/3 while the instance is up and
// fails while it is down. The note sent with each heartbeat is constant, so
// that steady state costs the Consul servers nothing (the agent syncs a
// check to the catalog only when its status or output changes).
type consulSession struct {
	backend *consul.Client
	agent   *api.Agent
	log     *slog.Logger

	mu         sync.Mutex
	registered map[string]bool // service IDs the agent has from us
	change     chan struct{}
}

func openConsul(ctx context.Context, spec backends.Spec, _ time.Duration, log *slog.Logger) (session, error) {
	b, err := backends.New(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	cc, ok := b.(*consul.Client)
	if !ok {
		b.Close()
		return nil, fmt.Errorf("backend %q is not consul", spec.Backend)
	}
	return &consulSession{backend: cc, agent: cc.API().Agent(), log: log,
		registered: map[string]bool{}, change: make(chan struct{})}, nil
}

// checkID is the ID of r's TTL check.
func checkID(r *Registration) string { return "confit:" + r.ID }

// Notes of the TTL check: constant, so heartbeats change nothing.
const (
	notePassing  = "confit register: check passing"
	noteCritical = "confit register: check failing or instance draining"
)

func (s *consulSession) register(ctx context.Context, r *Registration, status string) error {
	reg := &api.AgentServiceRegistration{
		ID: r.ID, Name: r.Service, Address: r.Address, Port: r.Port, Tags: r.Tags, Meta: r.Meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        checkID(r),
			Name:                           "confit register (" + r.Check.kind() + " check)",
			TTL:                            r.TTL.String(),
			Status:                         status,
			DeregisterCriticalServiceAfter: r.DeregisterAfter.String(),
		},
	}
	if err := s.agent.ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: register service %q: %w", r.ID, err)
	}
	s.mu.Lock()
	s.registered[r.ID] = true
	s.mu.Unlock()
	return nil
}

// set registers r on first use (and again whenever the agent no longer
// knows its check: an agent restarted without its state), then passes or
// fails its TTL check.
func (s *consulSession) set(ctx context.Context, r *Registration, up bool) error {
	status, note := api.HealthCritical, noteCritical
	if up {
		status, note = api.HealthPassing, notePassing
	}
	s.mu.Lock()
	known := s.registered[r.ID]
	s.mu.Unlock()
	if !known {
		return s.register(ctx, r, status)
	}
	err := s.agent.UpdateTTLOpts(checkID(r), note, status, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil && unknownCheck(err) {
		s.log.Warn("register: the Consul agent forgot the service; registering it again", "id", r.ID)
		s.mu.Lock()
		delete(s.registered, r.ID)
		s.mu.Unlock()
		return s.register(ctx, r, status)
	}
	if err != nil {
		return fmt.Errorf("consul: update check %q: %w", checkID(r), err)
	}
	return nil
}

// unknownCheck reports whether err says the agent has no such check.
func unknownCheck(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Unknown check") || strings.Contains(msg, "does not have associated TTL")
}

func (s *consulSession) changed() <-chan struct{} { return s.change }

// concurrency is the client's connections for reads and short requests
// (consul.Options.MaxReadConns' default).
func (s *consulSession) concurrency() int { return 2 }

// refresh is the heartbeat: three per TTL.
func (s *consulSession) refresh(r *Registration) time.Duration { return r.TTL / 3 }

func (s *consulSession) deregister(ctx context.Context, r *Registration) error {
	if err := s.agent.ServiceDeregisterOpts(r.ID, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: deregister service %q: %w", r.ID, err)
	}
	s.mu.Lock()
	delete(s.registered, r.ID)
	s.mu.Unlock()
	return nil
}

func (s *consulSession) close(context.Context) error { return s.backend.Close() }

// forget makes the next set register r again, with its new settings.
func (s *consulSession) forget(r *Registration) {
	s.mu.Lock()
	delete(s.registered, r.ID)
	s.mu.Unlock()
}
