-- A read-only role for analysts: USAGE on the readmodels schema and SELECT
-- on its views, those that exist now and those the projection engine
-- creates later (it (re)creates them as the role that runs the service,
-- which is the role that runs this migration). The role cannot log in;
-- analysts are given it:
--
--     CREATE ROLE alice LOGIN PASSWORD '…' IN ROLE rapport_readonly;
--     -- or: GRANT rapport_readonly TO alice;
--
-- Roles are cluster-wide and many databases of one cluster may migrate at
-- once (tests do): the role is created only if missing, and losing the race
-- to create it is not an error. A service role that may not create roles
-- skips this with a notice; an administrator can create the role and run
-- the grants below by hand.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rapport_readonly') THEN
        BEGIN
            CREATE ROLE rapport_readonly NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'rapport_readonly not created: the service role may not create roles (%)', SQLERRM;
                RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA readmodels TO rapport_readonly;
    GRANT SELECT ON ALL TABLES IN SCHEMA readmodels TO rapport_readonly;
    ALTER DEFAULT PRIVILEGES IN SCHEMA readmodels GRANT SELECT ON TABLES TO rapport_readonly;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The role stays: other databases of the cluster may use it.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rapport_readonly') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA readmodels REVOKE SELECT ON TABLES FROM rapport_readonly;
        REVOKE SELECT ON ALL TABLES IN SCHEMA readmodels FROM rapport_readonly;
        REVOKE USAGE ON SCHEMA readmodels FROM rapport_readonly;
    END IF;
END
$$;
-- +goose StatementEnd
