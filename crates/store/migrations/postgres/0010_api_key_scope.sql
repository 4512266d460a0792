-- M1: what an API key may reach, as JSON (organization, mail services, read-only); '' for
-- a session or an unscoped key, which act with all of the account's rights. Keep in step
-- with ../sqlite/0010_api_key_scope.sql.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
