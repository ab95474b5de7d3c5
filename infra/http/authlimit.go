package http

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// addrLimiter is a token bucket per client address that only failed
// authentications spend. It tracks at most max addresses: when full, it
// forgets those idle longest (their buckets have refilled, so forgetting
// them loses nothing); a flood from very many addresses therefore costs
// memory bounded by max, and each new address at most its burst.
type addrLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	max     int
	entries map[string]*addrEntry
	now     func() time.Time
}

type addrEntry struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

func newAddrLimiter(perSecond float64, burst, max int) *addrLimiter {
	return &addrLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, entries: map[string]*addrEntry{}, now: time.Now}
}

// exhausted says whether addr has no failure left to spend, and how long
// until it has one.
func (a *addrLimiter) exhausted(addr string) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[addr]
	if !ok {
		return 0, false
	}
	now := a.now()
	tokens := e.limiter.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - tokens) / float64(a.limit) * float64(time.Second))
	return max(wait, time.Second), true
}

// spend records a failed authentication from addr.
func (a *addrLimiter) spend(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	e, ok := a.entries[addr]
	if !ok {
		if len(a.entries) >= a.max {
			a.evict(now)
		}
		e = &addrEntry{limiter: rate.NewLimiter(a.limit, a.burst)}
		a.entries[addr] = e
	}
	e.lastSeen = now
	e.limiter.AllowN(now, 1)
}

// evict forgets the addresses whose bucket has refilled; if none has, the
// one idle longest. Called with a.mu held, only when the map is full.
func (a *addrLimiter) evict(now time.Time) {
	var oldest string
	var oldestSeen time.Time
	for addr, e := range a.entries {
		if e.limiter.TokensAt(now) >= float64(a.burst) {
			delete(a.entries, addr)
			continue
		}
		if oldest == "" || e.lastSeen.Before(oldestSeen) {
			oldest, oldestSeen = addr, e.lastSeen
		}
	}
	if len(a.entries) >= a.max && oldest != "" {
		delete(a.entries, oldest)
	}
}

// clientAddress is the host of the connection's remote address.
// X-Forwarded-For and the like are not read: without a trusted-proxy
// setting any client could send them to get a fresh bucket per request.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
