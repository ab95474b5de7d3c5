package app_test

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docker-compose.yml cannot run here (no Docker engine), so this test at
// least keeps it well formed and consistent with the service's settings.
func TestDockerComposeIsWellFormed(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   map[string]any    `yaml:"depends_on"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	esdb, ok := compose.Services["eventstore"]
	if !ok || !strings.HasPrefix(esdb.Image, "eventstore/eventstore:24.") || esdb.Environment["EVENTSTORE_INSECURE"] != "true" {
		t.Errorf("eventstore service: want an insecure EventStoreDB 24.x single node, got %+v", esdb)
	}
	if pg, ok := compose.Services["postgres"]; !ok || !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("postgres service missing or not a postgres image: %+v", pg)
	}
	rapport, ok := compose.Services["rapport"]
	if !ok || rapport.Build == nil {
		t.Fatalf("rapport service missing or not built from the Dockerfile")
	}
	for _, name := range []string{"DATABASE_URL", "RAPPORT_EVENT_STORE", "RAPPORT_MASTER_KEY"} {
		if rapport.Environment[name] == "" {
			t.Errorf("rapport service does not set %s", name)
		}
	}
	if !strings.HasPrefix(rapport.Environment["RAPPORT_EVENT_STORE"], "esdb://eventstore:2113") {
		t.Errorf("rapport service should run against EventStoreDB, has RAPPORT_EVENT_STORE=%q", rapport.Environment["RAPPORT_EVENT_STORE"])
	}
	for _, dep := range []string{"eventstore", "postgres"} {
		if _, ok := rapport.DependsOn[dep]; !ok {
			t.Errorf("rapport service does not depend on %s", dep)
		}
	}
	if _, err := os.Stat("../../Dockerfile"); err != nil {
		t.Errorf("the rapport service builds from a Dockerfile: %v", err)
	}
}
