package sla

// The SQL of the targets, shared by the queries that judge complaints in
// SQL (the analytics' breaches, the work queue), so that they agree by
// construction. alias is a row of readmodels.complaints; targets is a
// jsonb expression of Targets.Seconds ({"high": [14400, 259200], …}); at
// is the instant judged at (a timestamptz expression, e.g. "$4").

// FirstResponseDueSQL is when the last opening's first response is due.
func FirstResponseDueSQL(alias, targets string) string {
	return alias + `.opened_at + make_interval(secs => (` + targets + `::jsonb -> ` + alias + `.severity ->> 0)::float8)`
}

// ResolutionDueSQL is when the last opening's resolution is due.
func ResolutionDueSQL(alias, targets string) string {
	return alias + `.opened_at + make_interval(secs => (` + targets + `::jsonb -> ` + alias + `.severity ->> 1)::float8)`
}

// FirstResponseBreachSQL: the first response (the acknowledgement, else a
// resolution without one) came after its target, or has not come and the
// target is past at.
func FirstResponseBreachSQL(alias, targets, at string) string {
	return `coalesce(` + alias + `.acknowledged_at, ` + alias + `.resolved_at, ` + at + `::timestamptz) >
		` + FirstResponseDueSQL(alias, targets)
}

// ResolutionBreachSQL: the resolution came after its target, or has not
// come and the target is past at.
func ResolutionBreachSQL(alias, targets, at string) string {
	return `coalesce(` + alias + `.resolved_at, ` + at + `::timestamptz) >
		` + ResolutionDueSQL(alias, targets)
}
