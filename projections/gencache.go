package projections

import (
	"sync"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
)

// GenerationCache keeps, per generation, the committed value of each key
// a projector wrote, so that a batch need not read back and parse what the
// batches before it wrote. It implements Cache: what an Apply stages enters
// the cache only once its transaction committed, and an Apply whose outcome
// is not known empties its generation's cache.
type GenerationCache[V any] struct {
	size int

	mu      sync.Mutex
	cache   map[string]*lru.Cache[uuid.UUID, V] // by generation schema
	pending map[string]map[uuid.UUID]V          // staged by the Apply in progress
}

// NewGenerationCache keeps up to size values per generation; a size below 1
// turns caching off.
func NewGenerationCache[V any](size int) *GenerationCache[V] {
	return &GenerationCache[V]{size: size, cache: map[string]*lru.Cache[uuid.UUID, V]{}, pending: map[string]map[uuid.UUID]V{}}
}

// For is the cache of the generation with schema, or nil when caching is
// off or the generation is unknown ("").
func (g *GenerationCache[V]) For(schema string) *lru.Cache[uuid.UUID, V] {
	if g.size < 1 || schema == "" {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cache[schema]
	if c == nil {
		c, _ = lru.New[uuid.UUID, V](g.size) // size is positive
		g.cache[schema] = c
	}
	return c
}

// Stage keeps what the Apply in progress wrote to the generation with
// schema until its transaction ends (AfterApply).
func (g *GenerationCache[V]) Stage(schema string, written map[uuid.UUID]V) {
	if g.size < 1 || schema == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending[schema] = written
}

// AfterApply implements Cache.
func (g *GenerationCache[V]) AfterApply(schema string, committed bool) {
	g.mu.Lock()
	written := g.pending[schema]
	delete(g.pending, schema)
	c := g.cache[schema]
	g.mu.Unlock()
	if c == nil {
		return
	}
	if !committed {
		c.Purge()
		return
	}
	for id, v := range written {
		c.Add(id, v)
	}
}

// Forget implements Cache.
func (g *GenerationCache[V]) Forget(schema string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for s := range g.cache {
		if schema == "" || s == schema {
			delete(g.cache, s)
			delete(g.pending, s)
		}
	}
}
