package auth

import "time"

// SetClock makes g read the time from now, for tests.
func SetClock(g *Guard, now func() time.Time) { g.now = now }
