package projections

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Projector builds one read model from customer events. The engine calls
// Setup and Apply inside transactions whose search_path is the projector
// generation's own schema (rm_<name>_g<N>), so a projector names its tables
// without a schema and the same code fills every generation. Readers use
// the views readmodels.<table>, which the engine points at the active
// generation: a projector's table names must be unique across projectors.
//
// Apply must be deterministic and must fold a whole batch with a few
// statements (load the affected rows with = ANY($1), write them back with
// unnest arrays or COPY): the engine's throughput is that of Apply. The
// engine guarantees each event is applied exactly once per generation, in
// log order, with the checkpoint committed in the same transaction.
type Projector interface {
	// Name identifies the projector for good: it names its lock, its
	// checkpoint rows and its schemas. Lower-case letters, digits and _.
	Name() string
	// Version is the version of the projector's schema and logic. A process
	// that finds the active generation built by another version rebuilds it
	// (without downtime: the old generation serves until the new one has
	// caught up).
	Version() int
	// Handles lists the event types Apply wants. Other events are not even
	// decoded; only the checkpoint moves past them.
	Handles() []string
	// Setup creates the projector's tables in a new, empty generation.
	Setup(ctx context.Context, tx pgx.Tx) error
	// Apply applies a batch of events, oldest first. An error that is not
	// transient (see IsTransient) parks the stream of the first event that
	// fails on its own: that stream's events wait until a retry, the
	// others go on.
	Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error
}

// Reconciler is implemented by projectors with one row per customer, so
// that Engine.Verify can compare them with the event log.
type Reconciler interface {
	// AppliedRevisions calls visit with each customer stream the read model
	// holds and the revision of the last event it applied to it. It runs in
	// a transaction whose search_path is the generation's schema.
	AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error
}

// Indexer is implemented by projectors whose secondary indexes are cheaper
// to build once than to maintain while a generation is filled from the
// start of the log. The engine calls CreateIndexes (search_path set like
// for Setup) when a generation has caught up, before it serves readers,
// and for a first generation right after Setup. It must be idempotent
// (CREATE INDEX IF NOT EXISTS): a rebuild interrupted after it resumes.
type Indexer interface {
	CreateIndexes(ctx context.Context, tx pgx.Tx) error
}

// Cache is implemented by projectors that keep rows in memory between
// batches, so that Apply need not read back what it wrote. Only the
// process holding a projector's lock writes its generations, so such a
// cache is exact as long as the engine says how each transaction ended and
// when the projector must forget.
type Cache interface {
	// AfterApply says whether the transaction of the last Apply to the
	// generation with schema committed. When it did not (or the outcome is
	// unknown), the projector must not keep what that Apply wrote.
	AfterApply(schema string, committed bool)
	// Forget drops whatever the projector remembers of the generation with
	// schema, or of every generation when schema is "": the process
	// (re)took the lock, so another one may have written since, or the
	// generation was dropped.
	Forget(schema string)
}

type generationKey struct{}

// GenerationSchema is the schema of the generation that the Setup, Apply
// or CreateIndexes receiving ctx works on (the search_path of its
// transaction), for projectors that keep per-generation state.
func GenerationSchema(ctx context.Context) string {
	s, _ := ctx.Value(generationKey{}).(string)
	return s
}

func withGeneration(ctx context.Context, schema string) context.Context {
	return context.WithValue(ctx, generationKey{}, schema)
}

// VisitAppliedRevisions implements Reconciler for the usual read model: it
// runs query, which must return (customer id, last applied revision) rows,
// and visits each customer's stream.
func VisitAppliedRevisions(ctx context.Context, tx pgx.Tx, query string, visit func(stream string, revision uint64) error) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  uuid.UUID
			rev int64
		)
		if err := rows.Scan(&id, &rev); err != nil {
			return err
		}
		if err := visit(domain.StreamName(id), uint64(rev)); err != nil {
			return err
		}
	}
	return rows.Err()
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("projector name %q must match %s", name, nameRE)
	}
	return nil
}

// schemaName is the schema of a projector generation.
func schemaName(projector string, generation int) string {
	return fmt.Sprintf("rm_%s_g%d", projector, generation)
}

// Poison describes the event that stopped a projector: applying it failed
// with a permanent error. The checkpoint stays before it.
type Poison struct {
	Position  eventstore.Position
	Stream    string
	Revision  uint64
	EventID   uuid.UUID
	EventType string
	Err       string
	At        time.Time
}

// PoisonError is the error a projector stopped with.
type PoisonError struct {
	Projector  string
	Generation int
	Poison     Poison
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("projections: %s (generation %d) stopped at %s@%d (position %d, %s): %s",
		e.Projector, e.Generation, e.Poison.Stream, e.Poison.Revision, e.Poison.Position, e.Poison.EventType, e.Poison.Err)
}

// errLockLost ends a projector's work in this process: its locking
// connection broke and the lock could not be taken back without another
// process having held it, so whatever this process knows may be stale.
var errLockLost = errors.New("projections: projector lock lost")
