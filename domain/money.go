package domain

import (
	"strconv"
	"strings"
)

// Money is held as integer minor units of an ISO 4217 currency (cents of a
// euro, yen, fils of a dinar), never as floating point: sums, refunds and
// quintiles are then exact, and the number of decimals is the currency's.

// currencyDecimals maps each active ISO 4217 currency code to its number of
// minor-unit digits (the standard's "minor unit" column). Funds codes and
// precious metals are left out: nobody buys with them.
var currencyDecimals = func() map[string]int {
	m := map[string]int{}
	// Three letters per code, separated by spaces, grouped by decimals.
	groups := map[int]string{
		0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
		2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD " +
			"CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD " +
			"HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK " +
			"MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB " +
			"SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD " +
			"UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG",
		3: "BHD IQD JOD KWD LYD OMR TND",
		4: "CLF UYW",
	}
	for decimals, codes := range groups {
		for _, code := range strings.Fields(codes) {
			m[code] = decimals
		}
	}
	return m
}()

// CurrencyDecimals returns the number of minor-unit digits of an ISO 4217
// currency code (upper case), and whether the code is one.
func CurrencyDecimals(code string) (int, bool) {
	d, ok := currencyDecimals[code]
	return d, ok
}

// MaxAmountMinor bounds one amount, in minor units, so that sums over a
// customer's history and points earned from them cannot overflow int64.
const MaxAmountMinor int64 = 1_000_000_000_000_000

// ParseAmount reads a decimal string ("129.90", "5", "0.5") as minor units
// of a currency with the given decimals. It accepts digits with at most one
// point and at most decimals digits after it; no sign, exponent, spaces or
// thousands separators, so that an amount has one reading. It reports false
// for anything else and for amounts above MaxAmountMinor.
func ParseAmount(s string, decimals int) (int64, bool) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || (hasPoint && frac == "") || len(frac) > decimals || len(whole) > 19 {
		return 0, false
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return 0, false
			}
		}
	}
	digits := strings.TrimLeft(whole+frac+strings.Repeat("0", decimals-len(frac)), "0")
	if digits == "" {
		return 0, true
	}
	if len(digits) > 19 {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxAmountMinor {
		return 0, false
	}
	return n, true
}

// FormatAmount writes minor units as the decimal string ParseAmount reads:
// FormatAmount(12990, 2) is "129.90".
func FormatAmount(minor int64, decimals int) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if decimals == 0 {
		return sign + s
	}
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	return sign + s[:len(s)-decimals] + "." + s[len(s)-decimals:]
}

// unitMinor is one whole currency unit in minor units (10^decimals).
func unitMinor(decimals int) int64 {
	u := int64(1)
	for range decimals {
		u *= 10
	}
	return u
}
