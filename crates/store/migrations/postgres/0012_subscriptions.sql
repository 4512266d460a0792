-- IMAP subscriptions are names, independent of the mailboxes (RFC 9051 §6.3.9): CREATE does
-- not subscribe, DELETE does not unsubscribe, and a subscribed name may not exist. Keep in
-- step with ../sqlite/0012_subscriptions.sql. mailboxes.subscribed is no longer read.
CREATE TABLE subscriptions (
    address_id  BIGINT NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (address_id, name)
);
INSERT INTO subscriptions (address_id, name)
    SELECT address_id, name FROM mailboxes WHERE subscribed;
