package projections

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rapport-crm/rapport/infra/pgtest"
)

// TestUUIDsEncodeNatively: a projector connection encodes uuid.UUID
// values, alone, behind pointers, in arrays and in COPY, without the
// driver.Valuer detour, and PostgreSQL receives the same UUIDs.
func TestUUIDsEncodeNatively(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// (Plans are memoized: the premise is checked on a map of its own.)
	if plan := pgtype.NewMap().PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, uuid.UUID{}); fmt.Sprintf("%T", plan) != "*pgtype.encodePlanDriverValuer" {
		t.Fatalf("test premise: pgx encodes uuid.UUID by %T, not through driver.Valuer", plan)
	}
	m := conn.TypeMap()
	encodeUUIDsNatively(m)
	if _, ok := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, uuid.UUID{}).(*uuidEncodePlan); !ok {
		t.Fatalf("uuid.UUID is encoded by %T", m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, uuid.UUID{}))
	}
	a, b := uuid.New(), uuid.New()
	var nilID *uuid.UUID
	var one, ptr, arr, null string
	if err := conn.QueryRow(ctx, `SELECT $1::uuid::text, $2::uuid::text, $3::uuid[]::text, coalesce($4::uuid::text, 'null')`, a, &b, []uuid.UUID{a, b}, nilID).
		Scan(&one, &ptr, &arr, &null); err != nil {
		t.Fatal(err)
	}
	if one != a.String() || ptr != b.String() || arr != "{"+a.String()+","+b.String()+"}" || null != "null" {
		t.Fatalf("sent %s, %s, [%s %s], nil; PostgreSQL got %s, %s, %s, %s", a, b, a, b, one, ptr, arr, null)
	}
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE ids (id uuid, ids uuid[])`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"ids"}, []string{"id", "ids"}, pgx.CopyFromRows([][]any{{a, []uuid.UUID{b}}, {nilID, nil}})); err != nil {
		t.Fatal(err)
	}
	var copied string
	if err := conn.QueryRow(ctx, `SELECT string_agg(coalesce(id::text, 'null') || ' ' || coalesce(ids::text, 'null'), ';' ORDER BY id NULLS LAST) FROM ids`).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	if want := a.String() + " {" + b.String() + "};null null"; copied != want {
		t.Fatalf("COPY wrote %q, want %q", copied, want)
	}
}
