package commands

import "testing"

// TestEmailKey: emails are compared after NFKC and case folding
// (PRODUCT.md, input rules).
func TestEmailKey(t *testing.T) {
	same := []string{"uniq@example.com", "UNIQ@EXAMPLE.COM", "\uff55\uff4e\uff49\uff51@example.com", "uniq@\uff45xample.com", "Uniq@Example.com"}
	for _, email := range same {
		if got := EmailKey(email); got != "uniq@example.com" {
			t.Errorf("EmailKey(%q) = %q, want uniq@example.com", email, got)
		}
	}
	if EmailKey("stra\u00dfe@example.com") != EmailKey("STRASSE@example.com") {
		t.Errorf("case folding does not make ß and SS the same")
	}
	if EmailKey("other@example.com") == EmailKey("uniq@example.com") {
		t.Errorf("two addresses share a key")
	}
}
