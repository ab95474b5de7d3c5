package http_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestAPIKeyNamesAreCaseInsensitiveAndNeverReused: two actors must not
// read alike in the audit trail, so a name is taken whatever its case and
// even once its key is revoked.
func TestAPIKeyNamesAreCaseInsensitiveAndNeverReused(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	ctx := context.Background()
	if _, _, err := m.APIKeys.Create(ctx, "WRITER", []string{"writer"}); !errors.Is(err, postgres.ErrAPIKeyNameTaken) {
		t.Errorf("WRITER next to writer: %v, want ErrAPIKeyNameTaken", err)
	}
	if _, _, err := m.APIKeys.Create(ctx, "leaver", []string{"writer"}); err != nil {
		t.Fatal(err)
	}
	if err := m.APIKeys.Revoke(ctx, "leaver"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"leaver", "Leaver"} {
		if _, _, err := m.APIKeys.Create(ctx, name, []string{"writer"}); !errors.Is(err, postgres.ErrAPIKeyNameTaken) {
			t.Errorf("%s after leaver was revoked: %v, want ErrAPIKeyNameTaken", name, err)
		}
	}
}
