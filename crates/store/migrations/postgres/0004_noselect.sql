-- IMAP (issue 4). Keep in step with ../sqlite/0004_noselect.sql.

-- RFC 9051 §6.3.4: deleting a folder that has inferiors removes its messages and leaves the
-- name as a \Noselect folder, which stays until it is deleted itself (or created again).
ALTER TABLE mailboxes ADD COLUMN noselect BOOLEAN NOT NULL DEFAULT FALSE;
