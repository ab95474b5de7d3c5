package analytics

// QueryFor exposes a family's SQL and arguments to the benchmark, which
// can EXPLAIN them (RAPPORT_BENCH_EXPLAIN).
func (q *Queries) QueryFor(f Family, p Params) (string, []any) { return q.query(f, p) }
