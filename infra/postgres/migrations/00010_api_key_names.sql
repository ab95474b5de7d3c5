-- API key names are actors in the audit trail: two keys must never read
-- alike. Names are unique case-insensitively and across revoked keys too,
-- so a revoked key's name cannot be given to someone else.

-- +goose Up
-- Earlier deployments may hold revoked keys whose names (ignoring case)
-- an active or later key reuses. Each such older revoked key keeps its row
-- (events keep the name they recorded) under a name marked as retired.
WITH ranked AS (
    SELECT id, name,
           row_number() OVER (PARTITION BY lower(name) ORDER BY revoked_at IS NULL DESC, created_at DESC, id) AS n
    FROM rapport.api_keys
)
UPDATE rapport.api_keys k
SET name = left(ranked.name, 40) || '.retired.' || left(k.id::text, 8)
FROM ranked
WHERE k.id = ranked.id AND ranked.n > 1;

DROP INDEX rapport.api_keys_active_name_idx;
CREATE UNIQUE INDEX api_keys_name_idx ON rapport.api_keys (lower(name));

-- +goose Down
DROP INDEX rapport.api_keys_name_idx;
CREATE UNIQUE INDEX api_keys_active_name_idx ON rapport.api_keys (name) WHERE revoked_at IS NULL;
