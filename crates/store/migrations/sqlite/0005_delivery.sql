-- Delivery pipeline (issue 5). Keep in step with ../postgres/0005_delivery.sql.

-- Settings documents (JSON) of an address, a mail service or the platform: Sieve scripts,
-- autoresponders, filter switches and allow/block lists, signatures, templates. The service
-- layer owns their shape; storage only keeps them.
CREATE TABLE settings (
    scope       TEXT    NOT NULL CHECK (scope IN ('address', 'service', 'global')),
    scope_id    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, name)
);

-- Whom an address's autoresponder (or a Sieve vacation handle) answered, and when (F10: at
-- most one reply per sender per 7 days; "reset" forgets them).
CREATE TABLE autoreply_sent (
    address_id  INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    sender      TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL,
    PRIMARY KEY (address_id, sender)
);

-- What the pipeline did that a user or operator should be able to see: Sieve errors (the mail
-- went to INBOX), forwarding loops stopped, rejections sent.
CREATE TABLE delivery_log (
    id          INTEGER PRIMARY KEY,
    address_id  INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX delivery_log_address ON delivery_log(address_id, at);
