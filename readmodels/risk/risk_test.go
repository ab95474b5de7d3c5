package risk

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultWeightsArePRODUCTs(t *testing.T) {
	w := DefaultWeights()
	want := Weights{Contact30d: 10, Contact60d: 20, Contact90d: 30, OpenComplaint: 15, OpenComplaintsMax: 30, SLABreach: 15,
		Complaints90d: 10, CSATLow: 20, CSATNeutral: 5, NPSDetractor: 20, NPSPassive: 5, CSATDrop: 10, FollowUpOverdue: 10}
	if w != want {
		t.Fatalf("defaults %+v", w)
	}
	if got := w.String(); got != "contact_30d=10,contact_60d=20,contact_90d=30,open_complaint=15,open_complaints_max=30,sla_breach=15,"+
		"complaints_90d=10,csat_low=20,csat_neutral=5,nps_detractor=20,nps_passive=5,csat_drop=10,follow_up_overdue=10,purchase_lapsed=0" {
		t.Fatalf("String %s", got)
	}
	if !slices.Equal(w.Array(), []int32{10, 20, 30, 15, 30, 15, 10, 20, 5, 20, 5, 10, 10, 0}) {
		t.Fatalf("Array %v", w.Array())
	}
}

func TestParseWeights(t *testing.T) {
	for in, want := range map[string]func(*Weights){
		"":                                     nil,
		"  ":                                   nil,
		"contact_90d=40":                       func(w *Weights) { w.Contact90d = 40 },
		" open_complaint = 0 , csat_drop=100 ": func(w *Weights) { w.OpenComplaint, w.CSATDrop = 0, 100 },
		"follow_up_overdue=7,nps_passive=1":    func(w *Weights) { w.FollowUpOverdue, w.NPSPassive = 7, 1 },
	} {
		w := DefaultWeights()
		if want != nil {
			want(&w)
		}
		got, err := ParseWeights(in)
		if err != nil || got != w {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, w)
		}
	}
	for in, msg := range map[string]string{
		"contact_90d":                   "want key=points",
		"=3":                            "want key=points",
		"contact_90d=30,":               "want key=points",
		"low_nps=5":                     "unknown weight",
		"contact_90d=101":               "0 to 100",
		"contact_90d=-1":                "0 to 100",
		"contact_90d=1.5":               "0 to 100",
		"contact_90d=":                  "0 to 100",
		"contact_90d=1,contact_90d=2":   "twice",
		"contact_90d=99999999999999999": "0 to 100",
	} {
		if _, err := ParseWeights(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want an error saying %q", in, err, msg)
		}
	}
}

func TestFunctionSQLNamesEveryFactorAndWeight(t *testing.T) {
	stmts := FunctionSQL()
	all := strings.Join(stmts, "\n")
	for _, f := range Factors() {
		if !strings.Contains(all, f) {
			t.Errorf("the SQL does not name factor %s", f)
		}
	}
	for _, k := range WeightKeys() {
		if !strings.Contains(stmts[0], "'"+k+"'") {
			t.Errorf("customer_risk_weights does not read %s", k)
		}
	}
	// Every weight has a use: the score's, or the purchase factors'.
	purchases := PurchaseFunctionSQL()
	for i := range weightTable {
		if ref := "weights[" + strconv.Itoa(i+1) + "]"; !strings.Contains(stmts[1], ref) && !strings.Contains(purchases, ref) {
			t.Errorf("neither customer_risk nor customer_purchase_risk uses weight %d (%s)", i+1, weightTable[i].key)
		}
	}
	for _, f := range PurchaseFactors() {
		if !strings.Contains(purchases, "'"+f+"'") && !strings.Contains(PurchaseRiskSQL("r", "c.id", "$1", "$2"), "'"+f+"'") {
			t.Errorf("the SQL does not name factor %s", f)
		}
	}
}

// FuzzParseWeights: any input is refused or gives valid weights that
// String writes back to the same weights.
func FuzzParseWeights(f *testing.F) {
	for _, seed := range []string{"", DefaultWeights().String(), "contact_90d=30,open_complaint=15", "csat_low=0", "x=1", "a=b=c", ",,", "sla_breach=1e2",
		"contact_30d=+5", "contact_30d=0x10", " contact_60d = 100 ", "contact_60d=101", "nps_detractor=-0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWeights(s)
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("%q gave invalid weights: %v", s, err)
		}
		back, err := ParseWeights(w.String())
		if err != nil || back != w {
			t.Fatalf("%q: %+v does not read back (%+v, %v)", s, w, back, err)
		}
		if len(w.Array()) != len(WeightKeys()) {
			t.Fatalf("array of %d", len(w.Array()))
		}
	})
}
