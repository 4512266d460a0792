-- Small message bodies kept in the metadata store (issue 6). Keep in step with
-- ../sqlite/0007_inline_blobs.sql.
--
-- A body spooled by SMTP that is at most a few dozen KiB is written here, in the same
-- transaction as its queue entry, instead of into a file of its own: one fsync for a whole
-- group commit instead of two per message (file and directory). Content-addressed like the
-- files: `id` is "i" followed by the SHA-256 of `data` in hex, and readers verify it.
CREATE TABLE inline_blobs (
    id      TEXT PRIMARY KEY,
    data    BYTEA NOT NULL
);
