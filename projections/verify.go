package projections

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Report is the outcome of Verify.
type Report struct {
	Projectors []ProjectorReport
}

// OK reports whether every read model matched the log.
func (r Report) OK() bool {
	for _, p := range r.Projectors {
		if !p.OK() {
			return false
		}
	}
	return true
}

// ProjectorReport compares one per-customer read model with the log up to
// its checkpoint.
type ProjectorReport struct {
	Name       string
	Generation int
	Checkpoint eventstore.Position
	// Streams is how many customer streams had events the projector
	// handles up to the checkpoint.
	Streams int
	// Missing are streams with such events that the read model lacks.
	Missing []string
	// Extra are streams the read model holds and the log has no (handled)
	// event of up to the checkpoint.
	Extra []string
	// Mismatches are streams whose last applied revision differs from the
	// log's: an event was skipped or applied out of place.
	Mismatches []Mismatch
	// Parked are the streams the generation parked (see Status.Parked):
	// they are compared with the log up to the event they are parked on,
	// since their later events wait by design.
	Parked []string
}

// OK reports whether the read model matched the log.
func (p ProjectorReport) OK() bool {
	return len(p.Missing) == 0 && len(p.Extra) == 0 && len(p.Mismatches) == 0
}

// Mismatch is a stream whose read-model revision is not the log's.
type Mismatch struct {
	Stream string
	// Log is the revision of the stream's last handled event up to the
	// checkpoint; Model the revision the read model last applied.
	Log   uint64
	Model uint64
}

// Verify reconciles each per-customer projector (those implementing
// Reconciler) with the event log: it reads the active generation's
// checkpoint C and, in the same snapshot, the revision the read model last
// applied to each customer, then reads the global log up to C and compares.
// It catches events skipped or applied twice, which lag metrics cannot
// see. It reads the whole log once per projector.
func (e *Engine) Verify(ctx context.Context) (Report, error) {
	var report Report
	for _, rt := range e.runners {
		rec, ok := rt.p.(Reconciler)
		if !ok {
			continue
		}
		pr, err := rt.verify(ctx, rec)
		if err != nil {
			return report, err
		}
		report.Projectors = append(report.Projectors, pr)
	}
	return report, nil
}

func (rt *runner) verify(ctx context.Context, rec Reconciler) (ProjectorReport, error) {
	name := rt.p.Name()
	pr := ProjectorReport{Name: name}
	model := map[string]uint64{}
	tx, err := rt.e.cfg.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return pr, fmt.Errorf("projections: verify %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var schema string
	var cp int64
	if err := tx.QueryRow(ctx, `SELECT generation, schema_name, checkpoint FROM projections.generations WHERE projector = $1 AND state = 'active'`, name).
		Scan(&pr.Generation, &schema, &cp); err != nil {
		return pr, fmt.Errorf("projections: verify %s: active generation: %w", name, err)
	}
	pr.Checkpoint = eventstore.Position(cp)
	// Parked streams, in the same snapshot: the model holds them as they
	// were before the event they are parked on.
	parkedAt := map[string]uint64{}
	rows, err := tx.Query(ctx, `SELECT stream, revision FROM projections.parked WHERE projector = $1 AND generation = $2 ORDER BY stream`, name, pr.Generation)
	if err != nil {
		return pr, fmt.Errorf("projections: verify %s: parked streams: %w", name, err)
	}
	for rows.Next() {
		var (
			stream string
			rev    int64
		)
		if err := rows.Scan(&stream, &rev); err != nil {
			rows.Close()
			return pr, err
		}
		parkedAt[stream] = uint64(rev)
		pr.Parked = append(pr.Parked, stream)
	}
	if err := rows.Err(); err != nil {
		return pr, err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return pr, err
	}
	if err := rec.AppliedRevisions(ctx, tx, func(stream string, revision uint64) error {
		model[stream] = revision
		return nil
	}); err != nil {
		return pr, fmt.Errorf("projections: verify %s: read model: %w", name, err)
	}
	_ = tx.Rollback(ctx)

	logRevs := map[string]uint64{}
	from := eventstore.Start
	for from < pr.Checkpoint {
		page, err := rt.e.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: 1000})
		if err != nil {
			return pr, fmt.Errorf("projections: verify %s: read log: %w", name, err)
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			if ev.Position > pr.Checkpoint {
				from = pr.Checkpoint
				break
			}
			from = ev.Position
			if at, parked := parkedAt[ev.Stream]; parked && ev.Revision >= at {
				continue
			}
			if rt.e.projected(ev.Stream) && rt.handles[ev.Type] {
				logRevs[ev.Stream] = ev.Revision
			}
		}
	}
	pr.Streams = len(logRevs)
	for stream, want := range logRevs {
		got, ok := model[stream]
		switch {
		case !ok:
			pr.Missing = append(pr.Missing, stream)
		case got != want:
			pr.Mismatches = append(pr.Mismatches, Mismatch{Stream: stream, Log: want, Model: got})
		}
	}
	for stream := range model {
		if _, ok := logRevs[stream]; !ok {
			pr.Extra = append(pr.Extra, stream)
		}
	}
	slices.Sort(pr.Missing)
	slices.Sort(pr.Extra)
	slices.SortFunc(pr.Mismatches, func(a, b Mismatch) int {
		if a.Stream < b.Stream {
			return -1
		}
		if a.Stream > b.Stream {
			return 1
		}
		return 0
	})
	return pr, nil
}
