package analytics

// QueryFor exposes a family's SQL and arguments to the benchmark, which
// can EXPLAIN them (RAPPORT_BENCH_EXPLAIN).
func (q *Queries) QueryFor(f Family, p Params) (string, []any) { return q.query(f, p) }

// SerialSQL is the settings the rollups' queries run with, for
// TestExplainScale to explain them as they run.
const SerialSQL = serialSQL
