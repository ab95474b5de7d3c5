package commands

import (
	"sync"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// stateCache keeps recently used customers' states, so that a command
// reads only the events it has not seen: command latency does not grow
// with a customer's history.
type stateCache struct {
	mu      sync.Mutex
	entries *lru.Cache[uuid.UUID, *cacheEntry]
}

func newStateCache(size int) *stateCache {
	entries, err := lru.New[uuid.UUID, *cacheEntry](size)
	if err != nil {
		panic(err) // only for a non-positive size, which Config.Validate refuses
	}
	return &stateCache{entries: entries}
}

// entry returns the customer's entry, creating an empty one. Commands on
// one customer in one process queue on its mutex instead of racing to the
// store; an entry evicted while in use is harmless, the store's
// optimistic concurrency still decides.
func (c *stateCache) entry(customerID uuid.UUID) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries.Get(customerID); ok {
		return e
	}
	e := &cacheEntry{customerID: customerID, revision: -1}
	c.entries.Add(customerID, e)
	return e
}

// cacheEntry is one customer's state as of a revision.
type cacheEntry struct {
	mu         sync.Mutex
	customerID uuid.UUID
	state      domain.Customer
	// revision is the last event folded into state, -1 before the first.
	revision int64
	position eventstore.Position
	// lastHash chains the next event to the last one.
	lastHash string
	recent   recentCommands
	// loaded says the state was read from the store at least once; stale
	// that the store is known (or feared) to be ahead of it.
	loaded, stale bool
	// shredded says this process saw the erasure's shredding complete.
	shredded bool
}

// recentCommandsKept bounds the commands remembered per customer: a retry
// (same idempotency key) is recognised if fewer commands than this were
// handled on the customer since the original.
const recentCommandsKept = 128

type recentCommand struct {
	id          uuid.UUID
	requestHash string
	revision    uint64
	position    eventstore.Position
}

// recentCommands remembers the customer's last commands, oldest first.
type recentCommands struct {
	list []recentCommand
}

func (r *recentCommands) find(id uuid.UUID) (recentCommand, bool) {
	for i := len(r.list) - 1; i >= 0; i-- {
		if r.list[i].id == id {
			return r.list[i], true
		}
	}
	return recentCommand{}, false
}

func (r *recentCommands) add(c recentCommand) {
	if len(r.list) == recentCommandsKept {
		copy(r.list, r.list[1:])
		r.list = r.list[:len(r.list)-1]
	}
	r.list = append(r.list, c)
}

// observe records an event read from the store: events of one command are
// contiguous, so the command's result is its last event.
func (r *recentCommands) observe(id uuid.UUID, requestHash string, revision uint64, position eventstore.Position) {
	if id == uuid.Nil {
		return
	}
	if n := len(r.list); n > 0 && r.list[n-1].id == id {
		r.list[n-1].revision, r.list[n-1].position = revision, position
		return
	}
	r.add(recentCommand{id: id, requestHash: requestHash, revision: revision, position: position})
}
