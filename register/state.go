package register

import "time"

// State is what a registration wants the store to say about its instance.
type State int

// The states. A registration starts Down: it is announced only after Rise
// passing checks.
const (
	Down State = iota
	Up
	// Held is Down because the flap limit is reached: the check passes,
	// but the instance came up FlapLimit times within FlapWindow.
	Held
	// Draining is Down during shutdown, before deregistration.
	Draining
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Held:
		return "held"
	case Draining:
		return "draining"
	}
	return "down"
}

// machine turns check results into the desired state: Up after rise
// consecutive passes, Down after fall consecutive failures. Going down is
// never delayed; coming up is rationed to limit times per window (0: no
// limit), so a flapping instance spends its time out of the pool rather
// than in it. The zero value is not usable: see newMachine.
type machine struct {
	rise, fall    int
	limit         int
	window        time.Duration
	state         State
	passes, fails int
	ups           []time.Time // the latest up transitions, oldest first
}

func newMachine(c Check, limit int, window time.Duration) *machine {
	return &machine{rise: c.Rise, fall: c.Fall, limit: limit, window: window}
}

// observe records one check result at now and returns the new state and
// whether it changed.
func (m *machine) observe(now time.Time, pass bool) (State, bool) {
	old := m.state
	if pass {
		m.passes++
		m.fails = 0
		if m.state != Up && m.passes >= m.rise {
			if m.allowUp(now) {
				m.state = Up
				m.ups = append(m.ups, now)
			} else {
				m.state = Held
			}
		}
	} else {
		m.fails++
		m.passes = 0
		if m.state != Down && m.fails >= m.fall || m.state == Held {
			m.state = Down
		}
	}
	return m.state, m.state != old
}

// allowUp forgets the ups older than the window and reports whether
// another one is allowed.
func (m *machine) allowUp(now time.Time) bool {
	if m.limit <= 0 {
		return true
	}
	i := 0
	for i < len(m.ups) && now.Sub(m.ups[i]) >= m.window {
		i++
	}
	m.ups = m.ups[i:]
	return len(m.ups) < m.limit
}
