package domain

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	purchaseID   = uuid.MustParse("9a000000-0000-4000-8000-000000000007")
	purchase2ID  = uuid.MustParse("9a000000-0000-4000-8000-000000000008")
	refundID     = uuid.MustParse("9a000000-0000-4000-8000-000000000009")
	awardID      = uuid.MustParse("9a000000-0000-4000-8000-00000000000a")
	redemptionID = uuid.MustParse("9a000000-0000-4000-8000-00000000000b")
)

func purchaseAt(when time.Time) *time.Time { return &when }

// bought is a recorded EUR purchase and the points it earned.
func bought(id uuid.UUID, ref string, minor int64, when time.Time) []Event {
	events := []Event{PurchaseRecorded{PurchaseID: id, Reference: ref, AmountMinor: minor, Currency: "EUR", OccurredAt: when}}
	if points := minor / 100; points > 0 {
		events = append(events, PointsAwarded{AwardID: id, Points: points, PurchaseID: ptr(id), ExpiresAt: when.AddDate(1, 0, 0), OccurredAt: when})
	}
	return events
}

// valueSampleEvents has one value event of every type, every field set,
// between the reactivation (14 h) and the erasure (15 h) of sampleEvents.
func valueSampleEvents() []Event {
	bought := at(14*time.Hour + 10*time.Minute)
	return []Event{
		PurchaseRecorded{PurchaseID: purchaseID, Reference: "ORD-1", AmountMinor: 12990, Currency: "EUR", Channel: "web", OccurredAt: bought},
		PointsAwarded{AwardID: purchaseID, Points: 129, Reason: "", PurchaseID: ptr(purchaseID), ExpiresAt: bought.AddDate(1, 0, 0), OccurredAt: bought},
		PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 2990, Currency: "EUR", OccurredAt: at(14*time.Hour + 20*time.Minute)},
		PointsRevoked{RefundID: refundID, PurchaseID: purchaseID, Points: 29, Entitlement: 100, Lots: []LotTake{{AwardID: purchaseID, Points: 29}}, OccurredAt: at(14*time.Hour + 20*time.Minute)},
		PointsRedeemed{RedemptionID: redemptionID, Points: 60, Reason: "voucher", Lots: []LotTake{{AwardID: purchaseID, Points: 60}}, OccurredAt: at(14*time.Hour + 30*time.Minute)},
	}
}

func valueSampleState() Value {
	bought := at(14*time.Hour + 10*time.Minute)
	return Value{
		Currency:  "EUR",
		Purchases: []Purchase{{ID: purchaseID, Reference: "ORD-1", AmountMinor: 12990, RefundedMinor: 2990, Channel: "web", OccurredAt: bought, Points: 100}},
		Lots:      []PointsLot{{AwardID: purchaseID, Points: 129, Remaining: 40, EarnedAt: bought, ExpiresAt: bought.AddDate(1, 0, 0)}},
		entries:   idSet{}.with(purchaseID).with(refundID).with(redemptionID),
	}
}

func TestAPurchaseIsRecordedInMinorUnitsAndEarnsAPointPerWholeUnit(t *testing.T) {
	when := at(time.Hour)
	scenario(t).given(registered()).
		when(RecordPurchase{PurchaseID: purchaseID, Amount: "129.90", Currency: "eur", OccurredAt: &when, Reference: " ORD-1 ", Channel: "web"}).
		then(
			PurchaseRecorded{PurchaseID: purchaseID, Reference: "ORD-1", AmountMinor: 12990, Currency: "EUR", Channel: "web", OccurredAt: when},
			PointsAwarded{AwardID: purchaseID, Points: 129, PurchaseID: ptr(purchaseID), ExpiresAt: when.AddDate(0, 12, 0), OccurredAt: when},
		)
}

func TestAnAmountHasTheCurrencysOwnDecimals(t *testing.T) {
	when := at(time.Hour)
	for _, tc := range []struct {
		amount, currency string
		minor, points    int64
	}{
		{"1500", "JPY", 1500, 1500},
		{"1.234", "KWD", 1234, 1},
		{"0.5", "USD", 50, 0},
		{"0007.10", "GBP", 710, 7},
	} {
		t.Run(tc.currency, func(t *testing.T) {
			want := []Event{PurchaseRecorded{PurchaseID: purchaseID, Reference: "r", AmountMinor: tc.minor, Currency: tc.currency, OccurredAt: when}}
			if tc.points > 0 {
				want = append(want, PointsAwarded{AwardID: purchaseID, Points: tc.points, PurchaseID: ptr(purchaseID), ExpiresAt: when.AddDate(1, 0, 0), OccurredAt: when})
			}
			scenario(t).given(registered()).
				when(RecordPurchase{PurchaseID: purchaseID, Amount: tc.amount, Currency: tc.currency, OccurredAt: &when, Reference: "r"}).
				then(want...)
		})
	}
}

func TestAMalformedAmountIsRefusedNamingIt(t *testing.T) {
	when := at(time.Hour)
	for _, tc := range []struct{ amount, currency string }{
		{"", "EUR"}, {"-1", "EUR"}, {"+1", "EUR"}, {"1e3", "EUR"}, {"12.345", "EUR"}, {"1,000", "EUR"}, {" 12", "EUR"},
		{"12.", "EUR"}, {".5", "EUR"}, {"0", "EUR"}, {"0.00", "EUR"}, {"100.5", "JPY"}, {"100.0", "JPY"},
		{"10000000000000.01", "EUR"}, {"99999999999999999999", "EUR"}, {"１２", "EUR"}, {"NaN", "EUR"},
	} {
		t.Run(tc.amount+" "+tc.currency, func(t *testing.T) {
			scenario(t).given(registered()).
				when(RecordPurchase{PurchaseID: purchaseID, Amount: tc.amount, Currency: tc.currency, OccurredAt: &when, Reference: "r"}).
				thenFieldError("amount")
		})
	}
}

func TestAPurchaseNeedsACurrencyAReferenceAndAPastTime(t *testing.T) {
	future := now.Add(time.Minute)
	old := time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC)
	when := at(time.Hour)
	s := func() *scenarioRun { return scenario(t).given(registered()) }
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EURO", OccurredAt: &when, Reference: "r"}).thenFieldError("currency")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "XXX", OccurredAt: &when, Reference: "r"}).thenFieldError("currency")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", OccurredAt: &when, Reference: "r"}).thenFieldError("currency")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", Reference: "r"}).thenFieldError("occurred_at")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &future, Reference: "r"}).thenFieldError("occurred_at")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &old, Reference: "r"}).thenFieldError("occurred_at")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &when, Reference: "  "}).thenFieldError("reference")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &when, Reference: "a\x00b"}).thenFieldError("reference")
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &when, Reference: "r", Channel: "w\u0085eb"}).thenFieldError("channel")
	// Every bad field at once.
	s().when(RecordPurchase{PurchaseID: purchaseID, Amount: "x", Currency: "EUR"}).thenFieldError("amount", "occurred_at", "reference")
}

func TestASecondCurrencyIsRefusedNamingTheField(t *testing.T) {
	when := at(2 * time.Hour)
	scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 1000, at(time.Hour))...).
		when(RecordPurchase{PurchaseID: purchase2ID, Amount: "10.00", Currency: "USD", OccurredAt: &when, Reference: "ORD-2"}).
		thenFieldError("currency")
}

func TestARepeatedReferenceIsTheFirstPurchase(t *testing.T) {
	when := at(2 * time.Hour)
	o := scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 1000, at(time.Hour))...).
		when(RecordPurchase{PurchaseID: purchase2ID, Amount: "99.00", Currency: "USD", OccurredAt: &when, Reference: "ORD-1"})
	var already *AlreadyRecordedError
	if !errors.As(o.err, &already) || already.Kind != "purchase" || already.ID != purchaseID || len(o.events) != 0 {
		t.Fatalf("want the first purchase %s, got %v %v", purchaseID, o.err, o.events)
	}
}

func TestAnErasedCustomerTakesNoValueCommand(t *testing.T) {
	when := at(time.Hour)
	for _, cmd := range []Command{
		RecordPurchase{PurchaseID: purchaseID, Amount: "1", Currency: "EUR", OccurredAt: &when, Reference: "r"},
		RefundPurchase{RefundID: refundID, PurchaseID: purchaseID},
		AwardPoints{AwardID: awardID, Points: 5, Reason: "x"},
		RedeemPoints{RedemptionID: redemptionID, Points: 5, Reason: "x"},
	} {
		t.Run(typeName(cmd), func(t *testing.T) {
			scenario(t).given(registered()).given(bought(purchaseID, "r", 1000, at(time.Hour))...).given(erased(at(2*time.Hour))).
				when(cmd).thenError(CodeGone, ReasonCustomerErased)
			scenario(t).when(cmd).thenError(CodeNotFound, ReasonCustomerNotFound)
		})
	}
}

func TestARefundDefaultsToWhatIsLeftAndTakesBackItsPoints(t *testing.T) {
	scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 12990, at(time.Hour))...).
		given(PurchaseRefunded{RefundID: uuid.New(), PurchaseID: purchaseID, AmountMinor: 2990, Currency: "EUR", OccurredAt: at(2 * time.Hour)},
			PointsRevoked{PurchaseID: purchaseID, Points: 29, Entitlement: 100, Lots: []LotTake{{AwardID: purchaseID, Points: 29}}, OccurredAt: at(2 * time.Hour)}).
		when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID}).
		then(
			PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 10000, Currency: "EUR", OccurredAt: now},
			PointsRevoked{RefundID: refundID, PurchaseID: purchaseID, Points: 100, Entitlement: 0, Lots: []LotTake{{AwardID: purchaseID, Points: 100}}, OccurredAt: now},
		)
}

func TestAPartialRefundTakesBackOnlyTheWholeUnitsItCosts(t *testing.T) {
	scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 12990, at(time.Hour))...).
		when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID, Amount: ptr("0.90")}).
		then(
			PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 90, Currency: "EUR", OccurredAt: now},
		) // the 129.00 left still earns 129 points: nothing to take back
}

func TestARefundNeverExceedsWhatIsLeft(t *testing.T) {
	base := func() *scenarioRun {
		return scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 12990, at(time.Hour))...).
			given(PurchaseRefunded{RefundID: uuid.New(), PurchaseID: purchaseID, AmountMinor: 12000, Currency: "EUR", OccurredAt: at(2 * time.Hour)})
	}
	base().when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID, Amount: ptr("9.91")}).thenError(CodeConflict, ReasonRefundExceedsPurchase)
	base().when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID, Amount: ptr("9.90")}).
		then(PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 990, Currency: "EUR", OccurredAt: now},
			PointsRevoked{RefundID: refundID, PurchaseID: purchaseID, Points: 129, Entitlement: 0, Lots: []LotTake{{AwardID: purchaseID, Points: 129}}, OccurredAt: now})
	base().given(PurchaseRefunded{RefundID: uuid.New(), PurchaseID: purchaseID, AmountMinor: 990, Currency: "EUR", OccurredAt: at(3 * time.Hour)}).
		when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID}).thenError(CodeConflict, ReasonRefundExceedsPurchase)
	base().when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID, Amount: ptr("1.999")}).thenFieldError("amount")
	base().when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID, Amount: ptr("0")}).thenFieldError("amount")
	base().when(RefundPurchase{RefundID: refundID, PurchaseID: purchase2ID}).thenError(CodeNotFound, ReasonPurchaseNotFound)
}

func TestARefundTakesBackNoMoreThanTheBalance(t *testing.T) {
	// 129 points earned, 100 spent: a full refund can take back only 29,
	// from the purchase's lot first, then the oldest others.
	scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 12990, at(time.Hour))...).
		given(PointsRedeemed{RedemptionID: redemptionID, Points: 100, Reason: "x", Lots: []LotTake{{AwardID: purchaseID, Points: 100}}, OccurredAt: at(2 * time.Hour)}).
		given(PointsAwarded{AwardID: awardID, Points: 10, Reason: "goodwill", ExpiresAt: at(9000 * time.Hour), OccurredAt: at(3 * time.Hour)}).
		when(RefundPurchase{RefundID: refundID, PurchaseID: purchaseID}).
		then(PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 12990, Currency: "EUR", OccurredAt: now},
			PointsRevoked{RefundID: refundID, PurchaseID: purchaseID, Points: 39, Entitlement: 0,
				Lots: []LotTake{{AwardID: purchaseID, Points: 29}, {AwardID: awardID, Points: 10}}, OccurredAt: now})
}

func TestARedemptionAboveTheBalanceIsInsufficientPoints(t *testing.T) {
	s := scenario(t).given(registered()).given(bought(purchaseID, "ORD-1", 5000, at(time.Hour))...)
	s.when(RedeemPoints{RedemptionID: redemptionID, Points: 51, Reason: "voucher"}).thenError(CodeConflict, ReasonInsufficientPoints)
	s.when(RedeemPoints{RedemptionID: redemptionID, Points: 50, Reason: "voucher"}).
		then(PointsRedeemed{RedemptionID: redemptionID, Points: 50, Reason: "voucher", Lots: []LotTake{{AwardID: purchaseID, Points: 50}}, OccurredAt: now})
	scenario(t).given(registered()).when(RedeemPoints{RedemptionID: redemptionID, Points: 1, Reason: "voucher"}).thenError(CodeConflict, ReasonInsufficientPoints)
}

func TestPointsExpireFirstEarnedFirstSpent(t *testing.T) {
	// Lot A (100, earned first but recorded second) and lot B (50): a
	// redemption of 120 takes A whole and 20 of B.
	history := []Event{registered(),
		PointsAwarded{AwardID: awardID, Points: 50, Reason: "b", ExpiresAt: at(2000 * time.Hour), OccurredAt: at(20 * time.Hour)},
		PointsAwarded{AwardID: purchaseID, Points: 100, Reason: "a", ExpiresAt: at(1000 * time.Hour), OccurredAt: at(10 * time.Hour)},
	}
	s := scenario(t).given(history...)
	s.when(RedeemPoints{RedemptionID: redemptionID, Points: 120, Reason: "r"}).
		then(PointsRedeemed{RedemptionID: redemptionID, Points: 120, Reason: "r",
			Lots: []LotTake{{AwardID: purchaseID, Points: 100}, {AwardID: awardID, Points: 20}}, OccurredAt: now})

	// 30 of A spent; once A expires its 70 are gone and only B's 50 remain.
	spent := PointsRedeemed{RedemptionID: uuid.New(), Points: 30, Reason: "r", Lots: []LotTake{{AwardID: purchaseID, Points: 30}}, OccurredAt: at(30 * time.Hour)}
	state := Fold(append(history, spent)...)
	if b := state.Value.Balance(at(999 * time.Hour)); b != 120 {
		t.Fatalf("balance before A expires %d, want 120", b)
	}
	if b := state.Value.Balance(at(1000 * time.Hour)); b != 50 {
		t.Fatalf("balance once A expired %d, want 50", b)
	}
	late := scenario(t).given(append(history, spent)...)
	late.now = at(1000 * time.Hour)
	late.when(RedeemPoints{RedemptionID: redemptionID, Points: 51, Reason: "r"}).thenError(CodeConflict, ReasonInsufficientPoints)
	late.when(RedeemPoints{RedemptionID: redemptionID, Points: 50, Reason: "r"}).
		then(PointsRedeemed{RedemptionID: redemptionID, Points: 50, Reason: "r", Lots: []LotTake{{AwardID: awardID, Points: 50}}, OccurredAt: at(1000 * time.Hour)})
}

func TestAwardsHaveValidityAndTheRateIsConfigurable(t *testing.T) {
	when := at(time.Hour)
	policy := LoyaltyPolicy{PointsPerUnit: 3, ValidityMonths: 6}
	scenario(t).given(registered()).
		when(AwardPoints{AwardID: awardID, Points: 25, Reason: " goodwill ", Loyalty: policy}).
		then(PointsAwarded{AwardID: awardID, Points: 25, Reason: "goodwill", ExpiresAt: now.AddDate(0, 6, 0), OccurredAt: now})
	scenario(t).given(registered()).
		when(RecordPurchase{PurchaseID: purchaseID, Amount: "10.99", Currency: "EUR", OccurredAt: &when, Reference: "r", Loyalty: policy}).
		then(PurchaseRecorded{PurchaseID: purchaseID, Reference: "r", AmountMinor: 1099, Currency: "EUR", OccurredAt: when},
			PointsAwarded{AwardID: purchaseID, Points: 30, PurchaseID: ptr(purchaseID), ExpiresAt: when.AddDate(0, 6, 0), OccurredAt: when})
	scenario(t).given(registered()).
		when(RecordPurchase{PurchaseID: purchaseID, Amount: "10.99", Currency: "EUR", OccurredAt: &when, Reference: "r", Loyalty: LoyaltyPolicy{PointsPerUnit: -1}}).
		then(PurchaseRecorded{PurchaseID: purchaseID, Reference: "r", AmountMinor: 1099, Currency: "EUR", OccurredAt: when})
}

func TestPointsAndReasonsAreChecked(t *testing.T) {
	for _, cmd := range []Command{
		AwardPoints{AwardID: awardID, Points: 0, Reason: "x"},
		AwardPoints{AwardID: awardID, Points: MaxPoints + 1, Reason: "x"},
		RedeemPoints{RedemptionID: redemptionID, Points: -5, Reason: "x"},
	} {
		scenario(t).given(registered()).when(cmd).thenFieldError("points")
	}
	scenario(t).given(registered()).when(AwardPoints{AwardID: awardID, Points: 1}).thenFieldError("reason")
	scenario(t).given(registered()).when(RedeemPoints{RedemptionID: redemptionID, Points: 1, Reason: "\x07"}).thenFieldError("reason")
}

func TestARetriedLoyaltyCommandIsRecognised(t *testing.T) {
	history := append([]Event{registered()}, bought(purchaseID, "ORD-1", 5000, at(time.Hour))...)
	history = append(history,
		PointsAwarded{AwardID: awardID, Points: 5, Reason: "x", ExpiresAt: at(9000 * time.Hour), OccurredAt: at(2 * time.Hour)},
		PointsRedeemed{RedemptionID: redemptionID, Points: 5, Reason: "x", Lots: []LotTake{{AwardID: purchaseID, Points: 5}}, OccurredAt: at(3 * time.Hour)},
		PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 100, Currency: "EUR", OccurredAt: at(4 * time.Hour)},
	)
	for _, tc := range []struct {
		cmd  Command
		kind string
		id   uuid.UUID
	}{
		{AwardPoints{AwardID: awardID, Points: 5, Reason: "x"}, "award", awardID},
		{RedeemPoints{RedemptionID: redemptionID, Points: 5, Reason: "x"}, "redemption", redemptionID},
		{RefundPurchase{RefundID: refundID, PurchaseID: purchaseID}, "refund", refundID},
	} {
		o := scenario(t).given(history...).when(tc.cmd)
		var already *AlreadyRecordedError
		if !errors.As(o.err, &already) || already.Kind != tc.kind || already.ID != tc.id {
			t.Fatalf("%s: want already recorded, got %v", tc.kind, o.err)
		}
	}
}

// Two redemptions decided on the same state each pass on their own; the
// second can only be appended on the state after the first, where it fails.
func TestTwoRedemptionsOfTheSameBalanceCannotBothPass(t *testing.T) {
	base := Fold(append([]Event{registered()}, bought(purchaseID, "ORD-1", 5000, at(time.Hour))...)...)
	first, err := Decide(base, RedeemPoints{RedemptionID: redemptionID, Points: 40, Reason: "a"}, now)
	if err != nil {
		t.Fatal(err)
	}
	after := Fold(append(append([]Event{registered()}, bought(purchaseID, "ORD-1", 5000, at(time.Hour))...), first...)...)
	_, err = Decide(after, RedeemPoints{RedemptionID: uuid.New(), Points: 40, Reason: "b"}, now)
	if !errors.Is(err, &Error{Code: CodeConflict, Reason: ReasonInsufficientPoints}) {
		t.Fatalf("second redemption on the new state: %v", err)
	}
}

func TestEvolvingValueBranchesDoesNotAlias(t *testing.T) {
	base := Fold(append([]Event{registered()}, bought(purchaseID, "ORD-1", 5000, at(time.Hour))...)...)
	before := snapshot(t, base)
	a := Evolve(base, PointsRedeemed{RedemptionID: redemptionID, Points: 10, Lots: []LotTake{{AwardID: purchaseID, Points: 10}}, OccurredAt: at(2 * time.Hour)})
	b := Evolve(base, PurchaseRefunded{RefundID: refundID, PurchaseID: purchaseID, AmountMinor: 100, OccurredAt: at(2 * time.Hour)})
	b = Evolve(b, PurchaseRecorded{PurchaseID: purchase2ID, Reference: "ORD-2", AmountMinor: 1, Currency: "EUR", OccurredAt: at(3 * time.Hour)})
	if snapshot(t, base) != before {
		t.Fatal("evolving changed the base state")
	}
	if a.Value.Lots[0].Remaining != 40 || b.Value.Lots[0].Remaining != 50 || b.Value.Purchases[0].RefundedMinor != 100 || len(a.Value.Purchases) != 1 {
		t.Fatalf("branches alias: %+v / %+v", a.Value, b.Value)
	}
}

func TestAmountsRoundTripThroughTheirDecimalForm(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		decimals int
		s        string
	}{{12990, 2, "129.90"}, {5, 2, "0.05"}, {1500, 0, "1500"}, {1, 3, "0.001"}, {0, 2, "0.00"}, {MaxAmountMinor, 2, "10000000000000.00"}} {
		if got := FormatAmount(tc.minor, tc.decimals); got != tc.s {
			t.Errorf("FormatAmount(%d, %d) = %q, want %q", tc.minor, tc.decimals, got, tc.s)
		}
		if got, ok := ParseAmount(tc.s, tc.decimals); !ok || got != tc.minor {
			t.Errorf("ParseAmount(%q, %d) = %d, %v", tc.s, tc.decimals, got, ok)
		}
	}
	if !reflect.DeepEqual(valueSampleState().Balance(at(15*time.Hour)), int64(40)) {
		t.Fatal("sample balance")
	}
}
