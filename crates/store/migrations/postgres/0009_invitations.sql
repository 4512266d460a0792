-- M1: an account joins an organization only by accepting its invitation. Keep in step with
-- ../sqlite/0009_invitations.sql.
--
-- An account an administrator invites that did not exist is made without a password; the
-- token (only its SHA-256 is kept), mailed to the login, lets its owner choose one.
CREATE TABLE invitations (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('legal', 'admin', 'collaborator', 'external')),
    invited_by  TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    UNIQUE (org_id, user_id)
);
CREATE INDEX invitations_user ON invitations(user_id);
