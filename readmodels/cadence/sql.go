package cadence

import (
	"fmt"
)

// DefaultMaxOutboundPerWeek is PRODUCT.md's max_outbound_per_week.
const DefaultMaxOutboundPerWeek = 3

// Week is the window over-contact is counted in: 7 days of 24 h.
const Week = 7 * day

// Array is the cadence in whole days as the SQL takes it: A, B, C, then
// the cadence of a customer without a tier (an integer[] parameter).
func (c Cadence) Array() []int32 {
	return []int32{int32(c.Days("A")), int32(c.Days("B")), int32(c.Days("C")), int32(c.Days(""))}
}

// CadenceDaysSQL is the cadence in days of a customer whose tier is the
// expression tier, from the integer[] days (Array): a tier other than A,
// B or C takes the fourth element.
func CadenceDaysSQL(tier, days string) string {
	return fmt.Sprintf("coalesce((%[2]s)[array_position(ARRAY['A','B','C'], %[1]s)], (%[2]s)[4])", tier, days)
}

// DueAtSQL is the instant a customer becomes due for a contact: when its
// last contact, or its registration when there was none (the expression
// last), is more than its cadence old in whole days of 24 h ("days
// since" counts whole days: 30 days and 23 hours is 30), that is last +
// (cadence + 1) × 24 h. A customer is due at T when DueAt <= T.
func DueAtSQL(tier, last, days string) string {
	return fmt.Sprintf("(%s + (%s + 1) * interval '24 hours')", last, CadenceDaysSQL(tier, days))
}

// OverContactedSQL says whether the customer (the uuid expression
// customer) had more than max outbound contacts in the 7 days (168 h) up
// to asOf: occurred_at in (asOf − 168 h, asOf]. It reads
// readmodels.contacts through its (customer_id, occurred_at) index.
func OverContactedSQL(customer, asOf, max string) string {
	return fmt.Sprintf(`((SELECT count(*) FROM readmodels.contacts oc
		WHERE oc.customer_id = %[1]s AND oc.direction = 'outbound'
			AND oc.occurred_at > %[2]s - interval '168 hours' AND oc.occurred_at <= %[2]s) > %[3]s)`, customer, asOf, max)
}

// OverContactedInSQL selects the customers (column customer_id) that had
// more than max outbound contacts within some 7 days inside [from, to):
// a window of 168 h starting at one of their outbound contacts, [t,
// t + 168 h), counting only contacts in the period. The most contacts any
// 7 days can hold start at a contact, so those windows are all it looks
// at; one sorted pass with a window function, no self-join.
func OverContactedInSQL(from, to, max string) string {
	return fmt.Sprintf(`SELECT DISTINCT w.customer_id FROM (
		SELECT oc.customer_id, count(*) OVER (PARTITION BY oc.customer_id ORDER BY oc.occurred_at
			RANGE BETWEEN CURRENT ROW AND interval '167:59:59.999999' FOLLOWING) AS n
		FROM readmodels.contacts oc
		WHERE oc.direction = 'outbound' AND oc.occurred_at >= %[1]s AND oc.occurred_at < %[2]s) w
	WHERE w.n > %[3]s`, from, to, max)
}

// ValidMaxOutbound reports a maximum that cannot work.
func ValidMaxOutbound(n int) error {
	if n < 1 || n > 10000 {
		return fmt.Errorf("cadence: max outbound contacts per week %d: want 1 to 10000", n)
	}
	return nil
}
