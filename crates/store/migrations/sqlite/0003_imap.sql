-- IMAP (issue 4). Keep in step with ../postgres/0003_imap.sql.

-- RFC 9051 §7.4.1 / RFC 3501 §2.3.2: \Recent belongs to the first session that selects the
-- mailbox after a message arrived; messages from this UID on are still unclaimed.
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;

-- RFC 7162 (CONDSTORE/QRESYNC): which UIDs went away at which MODSEQ, so that a session (or a
-- reconnecting client) learns about expunges since the MODSEQ it knows.
CREATE TABLE expunged (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    modseq      INTEGER NOT NULL
);
CREATE INDEX expunged_mailbox_modseq ON expunged(mailbox_id, modseq);
CREATE INDEX messages_mailbox_modseq ON messages(mailbox_id, modseq);
