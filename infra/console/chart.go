package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// chartView is one monthly chart: an inline SVG drawn on the server (no
// script, no library), and its values as a table for screen readers and
// keyboards.
type chartView struct {
	kpi
	SVG    template.HTML
	Points []chartPoint
}

type chartPoint struct {
	Month string
	Value any
	// API is the request whose answer Value is.
	API string
}

// familyOf is the analytics family a charted figure belongs to.
func familyOf(name string) analytics.Family {
	switch name {
	case "csat_pct", "csat_avg", "nps", "responses":
		return analytics.Satisfaction
	case "churn_rate", "retention_rate":
		return analytics.Churn
	}
	return analytics.Complaints
}

// monthChart is lineChart over the charted months, each point naming the
// API request it is the answer of.
func monthChart(k kpi, months []chartMonth) chartView {
	groups := make([]analytics.Group, len(months))
	for i := range months {
		groups[i] = months[i].Group
	}
	cv := lineChart(k, groups)
	fam := familyOf(k.Name)
	for i, f := range chartFamilies {
		if f != fam {
			continue
		}
		for j := range cv.Points {
			cv.Points[j].API = months[j].APIs[i]
		}
	}
	return cv
}

// Plot area of the charts' 320 × 160 view box.
const (
	plotLeft, plotRight = 40.0, 312.0
	plotTop, plotBottom = 14.0, 124.0
)

// lineChart draws a figure by month: a line through the months that have
// the figure (a month without one, such as a CSAT without surveys, is a
// gap), a dot per month carrying the API's exact value, and the axis
// bounds. Every text in it is escaped; numbers are formatted here.
func lineChart(k kpi, months []analytics.Group) chartView {
	cv := chartView{kpi: k}
	vals := make([]*float64, len(months))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range months {
		g := &months[i]
		v := g.Figure(k.Name)
		cv.Points = append(cv.Points, chartPoint{Month: groupKey(g), Value: v})
		switch f := v.(type) {
		case *float64:
			if f != nil && !math.IsNaN(*f) {
				vals[i] = f
			}
		case int64:
			x := float64(f)
			vals[i] = &x
		}
		if vals[i] != nil {
			lo, hi = math.Min(lo, *vals[i]), math.Max(hi, *vals[i])
		}
	}
	switch k.Kind {
	case "pct":
		lo, hi = 0, math.Max(100, hi)
	case "score":
		lo, hi = math.Min(lo, 0), math.Max(hi, 0)
		if k.Name == "nps" {
			lo, hi = -100, 100
		}
	default:
		lo = 0
	}
	if math.IsInf(hi, -1) || hi <= lo {
		hi = lo + 1
	}
	n := len(months)
	x := func(i int) float64 {
		if n == 1 {
			return (plotLeft + plotRight) / 2
		}
		return plotLeft + (plotRight-plotLeft)*float64(i)/float64(n-1)
	}
	y := func(v float64) float64 { return plotBottom - (plotBottom-plotTop)*(v-lo)/(hi-lo) }
	label := func(v float64) string {
		if k.Kind == "duration" {
			return durationText(&v)
		}
		return trimFloat(v)
	}
	var b strings.Builder
	esc := template.HTMLEscapeString
	id := "chart-" + k.Name
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 320 160" role="img" aria-labelledby="%s-t %s-d" data-chart="%s">`, id, id, esc(k.Name))
	fmt.Fprintf(&b, `<title id="%s-t">%s by month</title><desc id="%s-d">%d months; the values are in the table below the chart.</desc>`, id, esc(k.Label), id, n)
	// Axes and bounds.
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, plotLeft, plotBottom, plotRight, plotBottom)
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, plotLeft, plotTop, plotLeft, plotBottom)
	fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, plotLeft-4, plotTop+4, esc(label(hi)))
	fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, plotLeft-4, plotBottom, esc(label(lo)))
	if lo < 0 && hi > 0 {
		fmt.Fprintf(&b, `<line class="zero" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, plotLeft, y(0), plotRight, y(0))
	}
	// The line, broken where a month has no figure.
	var seg []string
	flush := func() {
		if len(seg) > 1 {
			fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for i, v := range vals {
		if v == nil {
			flush()
			continue
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(i), y(*v)))
	}
	flush()
	for i, p := range cv.Points {
		if i%2 == (n-1)%2 || n <= 6 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x(i), plotBottom+14, esc(monthLabel(p.Month)))
		}
		if vals[i] == nil {
			continue
		}
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3" data-month="%s" data-figure="%s" data-value="%s"><title>%s: %s</title></circle>`,
			x(i), y(*vals[i]), esc(p.Month), esc(k.Name), esc(rhttp.FigureText(p.Value)), esc(p.Month), esc(label(*vals[i])))
	}
	b.WriteString(`</svg>`)
	cv.SVG = template.HTML(b.String()) // #nosec G203 -- built above from escaped text and formatted numbers
	return cv
}

// monthLabel turns YYYY-MM into a short month name (Jan), with the year
// in January.
func monthLabel(key string) string {
	t, err := time.Parse("2006-01", key)
	if err != nil {
		return key
	}
	if t.Month() == time.January {
		return t.Format("Jan 06")
	}
	return t.Format("Jan")
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}
