-- Mail storage (issue 3): mailboxes and messages as IMAP needs them (RFC 9051 §2.3: UIDs,
-- UIDVALIDITY, flags; RFC 7162: per-message MODSEQ), the durable spool/queue, DKIM keys,
-- and the sending log behind the daily limit (O3). Keep in step with ../postgres/0002_mail.sql.

CREATE TABLE mailboxes (
    id              INTEGER PRIMARY KEY,
    address_id      INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    -- Full hierarchical name, '/' as separator; the inbox is always "INBOX".
    name            TEXT    NOT NULL,
    -- P5 role: '\Drafts', '\Sent', '\Trash', '\Archive', '\Junk' (RFC 6154), or ''.
    special_use     TEXT    NOT NULL DEFAULT '',
    subscribed      BOOLEAN NOT NULL DEFAULT TRUE,
    uidvalidity     INTEGER NOT NULL,
    uidnext         INTEGER NOT NULL DEFAULT 1,
    highestmodseq   INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    UNIQUE (address_id, name)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    blob_id         TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    internal_date   INTEGER NOT NULL,
    -- System flags as bits: 1 \Seen, 2 \Answered, 4 \Flagged, 8 \Deleted, 16 \Draft.
    flags           INTEGER NOT NULL DEFAULT 0,
    -- Keywords, space-separated.
    keywords        TEXT    NOT NULL DEFAULT '',
    modseq          INTEGER NOT NULL,
    -- Summary for listings without reading the blob.
    header_from     TEXT    NOT NULL DEFAULT '',
    subject         TEXT    NOT NULL DEFAULT '',
    sent_at         INTEGER,
    message_id      TEXT    NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages(blob_id);

-- The spool: one row per accepted message until every recipient is done. A message is
-- acknowledged with 250 only once its row (and its blob) are committed.
CREATE TABLE queue (
    id              INTEGER PRIMARY KEY,
    blob_id         TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    -- Envelope sender; '' is the null reverse-path (bounces).
    mail_from       TEXT    NOT NULL,
    -- 'inbound' (MX), 'submission' (authenticated user), 'dsn' (our own bounce).
    source          TEXT    NOT NULL,
    -- Submission: the authenticated address (DKIM domain, limits).
    sender_address_id INTEGER REFERENCES addresses(id) ON DELETE SET NULL,
    -- RFC 3461 parameters.
    env_id          TEXT,
    ret_full        BOOLEAN NOT NULL DEFAULT FALSE,
    received_at     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- A worker's claim: until when, and which node holds it (released when that node starts).
    lease_until     INTEGER,
    leased_by       TEXT
);
CREATE INDEX queue_next ON queue(next_attempt_at);

CREATE TABLE queue_rcpts (
    id              INTEGER PRIMARY KEY,
    queue_id        INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    -- Envelope recipient as given.
    rcpt            TEXT    NOT NULL,
    -- Local recipient: the hosted address mail is delivered to (after alias/catchall).
    address_id      INTEGER REFERENCES addresses(id) ON DELETE SET NULL,
    -- How a local recipient was resolved: 'address', 'alias' or 'catchall' (F1, F10).
    via             TEXT    NOT NULL DEFAULT '',
    -- Remote recipient: its domain (deliveries are grouped by it).
    domain          TEXT    NOT NULL,
    is_local        BOOLEAN NOT NULL,
    -- 'pending', 'delivered', 'failed'.
    status          TEXT    NOT NULL DEFAULT 'pending',
    -- RFC 3461 NOTIFY bits and ORCPT.
    notify          INTEGER NOT NULL DEFAULT 0,
    orcpt           TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL
);
CREATE INDEX queue_rcpts_queue ON queue_rcpts(queue_id);

-- O2/D1: DKIM keys per domain, generated with the mail service.
CREATE TABLE dkim_keys (
    id              INTEGER PRIMARY KEY,
    domain_id       INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector        TEXT    NOT NULL,
    -- 'ed25519-sha256' or 'rsa-sha256'.
    algorithm       TEXT    NOT NULL,
    -- Private key, DER (PKCS#8 for Ed25519, PKCS#1 for RSA), base64.
    private_key     TEXT    NOT NULL,
    -- The p= value to publish (base64).
    public_key      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (domain_id, selector)
);

-- O3: recipients sent per address, for the rolling 24 h limit.
CREATE TABLE send_log (
    address_id      INTEGER NOT NULL REFERENCES addresses(id) ON DELETE CASCADE,
    at              INTEGER NOT NULL,
    recipients      INTEGER NOT NULL
);
CREATE INDEX send_log_address_time ON send_log(address_id, at);
