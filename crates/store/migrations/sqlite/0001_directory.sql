-- Directory of the Manager (PRODUCT.md M1-M7, M11, M12). Times are Unix seconds (UTC).
-- Keep in step with ../postgres/0001_directory.sql: same tables, columns and constraints.

CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    login           TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    is_operator     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      INTEGER NOT NULL,
    last_login_at   INTEGER
);

CREATE TABLE memberships (
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('legal', 'admin', 'collaborator', 'external')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX domains_org ON domains(org_id);

CREATE TABLE mail_services (
    id                  INTEGER PRIMARY KEY,
    org_id              INTEGER NOT NULL REFERENCES orgs(id),
    domain_id           INTEGER NOT NULL UNIQUE REFERENCES domains(id),
    name                TEXT    NOT NULL,
    tags                TEXT    NOT NULL DEFAULT '',
    offer               TEXT    NOT NULL,
    address_quota       INTEGER NOT NULL CHECK (address_quota >= 0),
    new_address_limit   INTEGER,
    maintenance         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          INTEGER NOT NULL
);
CREATE INDEX mail_services_org ON mail_services(org_id);

CREATE TABLE grants (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service_id  INTEGER NOT NULL REFERENCES mail_services(id) ON DELETE CASCADE,
    level       TEXT    NOT NULL CHECK (level IN ('use', 'manage')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, service_id)
);

CREATE TABLE addresses (
    id                          INTEGER PRIMARY KEY,
    service_id                  INTEGER NOT NULL REFERENCES mail_services(id),
    local_part                  TEXT    NOT NULL,
    password_hash               TEXT    NOT NULL,
    storage_quota_bytes         INTEGER NOT NULL,
    storage_used_bytes          INTEGER NOT NULL DEFAULT 0,
    forward_keep_copy           BOOLEAN NOT NULL DEFAULT TRUE,
    may_change_password         BOOLEAN NOT NULL DEFAULT TRUE,
    may_change_autoresponder    BOOLEAN NOT NULL DEFAULT TRUE,
    may_change_folders          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at                  INTEGER NOT NULL,
    last_login_at               INTEGER,
    UNIQUE (service_id, local_part)
);

CREATE TABLE forwards (
    address_id  INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    target      TEXT    NOT NULL,
    PRIMARY KEY (address_id, target)
);

CREATE TABLE aliases (
    id          INTEGER PRIMARY KEY,
    service_id  INTEGER NOT NULL REFERENCES mail_services(id),
    local_part  TEXT    NOT NULL,
    address_id  INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    UNIQUE (service_id, local_part)
);
CREATE INDEX aliases_address ON aliases(address_id);

-- Every address ever created, kept after deletion: the rolling "50 new addresses per 24 h"
-- limit (M6) must not be bypassed by deleting and re-creating.
CREATE TABLE address_creations (
    service_id  INTEGER NOT NULL REFERENCES mail_services(id) ON DELETE CASCADE,
    local_part  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX address_creations_service_time ON address_creations(service_id, created_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    org_id      INTEGER,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_org ON audit_log(org_id, id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);

CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('session', 'apikey')),
    name            TEXT    NOT NULL,
    token_hash      TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    last_used_at    INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_id, kind);
