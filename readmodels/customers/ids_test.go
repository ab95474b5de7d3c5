package customers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// A list of many ids (an RFM segment of thousands, walked in the
// directory's order) pages exactly like the definition: the customers
// among the ids matching the other filters, oldest registration first,
// with equal registration times, across pages; and a few ids alike.
func TestListOfManyIDsPagesLikeTheFilter(t *testing.T) {
	p, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pool := apptest.ReadModels(t, p)
	ctx := context.Background()
	var schema string
	if err := pool.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = $1 AND state = 'active'`, customers.Name).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "customers"}.Sanitize()+` (id, name, email, company, tags, segment, tier, region,
			account_manager, team_members, status, registered_at, open_complaints, complaints_total, complaints, last_revision, last_position, updated_at)
		SELECT md5(i::text)::uuid, 'C' || i, 'c' || i || '@example.com', '', '{}', (ARRAY['smb', 'enterprise'])[1 + i % 2], 'A', 'emea',
			'am', ARRAY['am'], 'active', $1::timestamptz - (i / 3) * interval '1 minute', 0, 0, '[]', 1, i, $1::timestamptz
		FROM generate_series(1, 9000) i`, now); err != nil {
		t.Fatal(err)
	}
	q := customers.NewQueries(pool).At(now)
	type row struct {
		at time.Time
		id uuid.UUID
	}
	rows, err := pool.Query(ctx, `SELECT registered_at, id, segment FROM readmodels.customers`)
	if err != nil {
		t.Fatal(err)
	}
	var all []row
	segment := map[uuid.UUID]string{}
	for rows.Next() {
		var r row
		var s string
		if err := rows.Scan(&r.at, &r.id, &s); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
		segment[r.id] = s
	}
	rows.Close()
	slices.SortFunc(all, func(a, b row) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return slices.Compare(a.id[:], b.id[:])
	})
	for _, n := range []int{30, 2100, 6000} {
		var ids []uuid.UUID
		in := map[uuid.UUID]bool{}
		for i, r := range all {
			if i*n/len(all) != (i+1)*n/len(all) { // n of them, spread
				ids = append(ids, r.id)
				in[r.id] = true
			}
		}
		for _, f := range []customers.Filter{{IDs: &ids}, {IDs: &ids, Segment: "smb"}} {
			var want []uuid.UUID
			for _, r := range all {
				if in[r.id] && (f.Segment == "" || segment[r.id] == f.Segment) {
					want = append(want, r.id)
				}
			}
			var got []uuid.UUID
			cursor := ""
			for pages := 0; ; pages++ {
				page, err := q.List(ctx, f, 400, cursor) // more than a walk's chunk holds of 2,100
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range page.Items {
					got = append(got, c.ID)
				}
				if page.NextCursor == "" {
					break
				}
				if pages > 100 {
					t.Fatal("the pages do not end")
				}
				cursor = page.NextCursor
			}
			if !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("%d ids, segment %q: %d customers listed, want %d (same order: %v)", n, f.Segment, len(got), len(want), slices.Equal(got, want))
			}
		}
	}
}
