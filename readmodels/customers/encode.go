package customers

import (
	"strconv"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// encodeRiskInputs renders the complaints and the pending follow-ups as
// the JSON of complaintJSON and followUpJSON (by hand: this runs for every
// row written), and returns the earliest pending due date.
func encodeRiskInputs(c *domain.Customer, buf []byte) (complaints, followUps string, nextDue time.Time, _ []byte) {
	b := append(buf[:0], '[')
	for i, x := range c.Complaints {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, x.ID.String()...)
		b = append(b, `","category":`...)
		b = appendJSONString(b, x.Category)
		b = append(b, `,"severity":`...)
		b = appendJSONString(b, string(x.Severity))
		if x.Channel != "" {
			b = append(b, `,"channel":`...)
			b = appendJSONString(b, string(x.Channel))
		}
		b = append(b, `,"status":`...)
		b = appendJSONString(b, string(x.Status))
		if x.Assignee != "" {
			b = append(b, `,"assignee":`...)
			b = appendJSONString(b, x.Assignee)
		}
		b = append(b, `,"filed_at":`...)
		b = appendJSONTime(b, x.FiledAt)
		b = append(b, `,"opened_at":`...)
		b = appendJSONTime(b, x.OpenedAt)
		if x.Acknowledged && !x.AcknowledgedAt.IsZero() {
			b = append(b, `,"acknowledged_at":`...)
			b = appendJSONTime(b, x.AcknowledgedAt)
		}
		if !x.ResolvedAt.IsZero() {
			b = append(b, `,"resolved_at":`...)
			b = appendJSONTime(b, x.ResolvedAt)
		}
		b = append(b, `,"openings":`...)
		b = strconv.AppendInt(b, int64(x.Openings), 10)
		b = append(b, `,"escalations":`...)
		b = strconv.AppendInt(b, int64(x.Escalations), 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	complaints = string(b)
	b = append(b[:0], '[')
	n := 0
	for _, f := range c.FollowUps {
		if f.Done {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"id":"`...)
		b = append(b, f.ID.String()...)
		b = append(b, `","due_at":`...)
		b = appendJSONTime(b, f.DueAt)
		b = append(b, `,"by":`...)
		b = appendJSONString(b, f.By)
		b = append(b, `,"scheduled_at":`...)
		b = appendJSONTime(b, f.ScheduledAt)
		b = append(b, '}')
		if nextDue.IsZero() || f.DueAt.Before(nextDue) {
			nextDue = f.DueAt
		}
	}
	b = append(b, ']')
	return complaints, string(b), nextDue, b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func countPending(c *domain.Customer) int {
	n := 0
	for _, f := range c.FollowUps {
		if !f.Done {
			n++
		}
	}
	return n
}

// textArray renders a Postgres text[] literal: unnest cannot take ragged
// arrays, so each row's list travels as one literal.
func textArray(buf *strings.Builder, items []string) string {
	buf.Reset()
	buf.WriteByte('{')
	for i, s := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				buf.WriteByte('\\')
			}
			buf.WriteRune(r)
		}
		buf.WriteByte('"')
	}
	buf.WriteByte('}')
	return buf.String()
}
