package ratelimit

import (
	"math"
	"time"
)

// gcraModel is the limiter's arithmetic in Go, on a clock the test sets:
// the reference that runSteps holds acquireScript and cooldownScript to
// (see scripts.go). It is not a limiter: it only books and cools down.
type gcraModel struct {
	g   gcra
	now time.Time

	tat time.Time // theoretical arrival time
	cd  time.Time // end of the cooldown
	f   float64   // adaptive rate factor set at fAt (0: never lowered)
	fAt time.Time
}

// newGCRAModel returns the model of a limiter for cfg.
func newGCRAModel(cfg Config) (*gcraModel, error) {
	_, g, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return &gcraModel{g: g}, nil
}

// cooldown mirrors cooldownScript.
func (m *gcraModel) cooldown(d time.Duration) {
	if d <= 0 {
		return
	}
	if m.g.adaptive && !m.cd.After(m.now) { // a new cooldown: lower the rate once
		m.f = math.Max(AdaptiveFloor, factorAt(m.f, m.fAt, m.now)*AdaptiveDecrease)
		m.fAt = m.now
	}
	if until := m.now.Add(d); until.After(m.cd) {
		m.cd = until
	}
}

// acquire mirrors acquireScript: it books the next slot unless reserve and
// the slot is not free now, or limit >= 0 and the slot is further away.
func (m *gcraModel) acquire(reserve bool, limit time.Duration) (booked bool, delay time.Duration) {
	tat := m.tat
	if tat.Before(m.now) {
		tat = m.now
	}
	if c := m.cd.Add(m.g.tolerance); c.After(tat) {
		tat = c
	}
	slot := tat.Add(-m.g.tolerance)
	if slot.Before(m.now) {
		slot = m.now
	}
	delay = slot.Sub(m.now)
	if (reserve && delay > 0) || (limit >= 0 && delay > limit) {
		return false, delay
	}
	interval := m.g.interval
	if m.g.adaptive {
		if f := factorAt(m.f, m.fAt, m.now); f < 1 {
			interval = time.Duration(math.Round(float64(interval) / f))
		}
	}
	m.tat = tat.Add(interval)
	return true, delay
}
