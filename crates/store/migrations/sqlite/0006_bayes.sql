-- Bayesian spam classifier and user reports (issue 5, F5). Keep in step with
-- ../postgres/0006_bayes.sql.

-- Token counts: how many trained spam and ham messages contained each token. `scope_id` is
-- an address id for the address's own store, or 0 for the platform-wide store (every
-- training also counts there). Tokens are 64-bit hashes of the words (core::mail::bayes).
CREATE TABLE bayes_tokens (
    scope_id    INTEGER NOT NULL,
    token       INTEGER NOT NULL,
    spam        INTEGER NOT NULL,
    ham         INTEGER NOT NULL,
    PRIMARY KEY (scope_id, token)
);

-- How many messages each store was trained with.
CREATE TABLE bayes_totals (
    scope_id    INTEGER NOT NULL PRIMARY KEY,
    spam        INTEGER NOT NULL,
    ham         INTEGER NOT NULL
);

-- Which message an address trained as what: moving a message into Spam twice trains once,
-- moving it back out un-trains it first.
CREATE TABLE bayes_trained (
    address_id  INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    msg_key     TEXT    NOT NULL,
    class       TEXT    NOT NULL CHECK (class IN ('spam', 'ham')),
    at          INTEGER NOT NULL,
    PRIMARY KEY (address_id, msg_key)
);

-- Messages users reported ("report as spam/phishing") for the operator. Kept when the
-- address goes: the operator may still need them.
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL,
    address     TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('spam', 'phishing')),
    mail_from   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    headers     TEXT    NOT NULL,
    reported_by TEXT    NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX reports_at ON reports(at);
