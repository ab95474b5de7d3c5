package pgboot_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

// What `make run` does: find or start a server, make sure the application's
// database exists, and leave a dev cluster running for the next start.
func ExampleEnsure() {
	ctx := context.Background()
	srv, err := pgboot.Ensure(ctx, pgboot.Config{DatabaseURL: os.Getenv("DATABASE_URL")})
	if err != nil {
		log.Fatal(err) // says what to install or set
	}
	dbURL, err := pgboot.CreateDatabase(ctx, srv.URL, "rapport_dev")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("PostgreSQL from", srv.Source, "; database", pgboot.Redact(dbURL))
	if srv.Started {
		fmt.Println("stop it with:", srv.StopHint())
	}
}
