-- IMAP SEARCH SENTON/SENTBEFORE/SENTSINCE compare the day of the Date: field as written,
-- disregarding its time and zone (RFC 9051 §6.4.4): kept per message as days since
-- 1970-01-01 of that written date. NULL for messages stored before (their sent_at, in UTC,
-- stands in). Keep in step with ../sqlite/0011_sent_day.sql.
ALTER TABLE messages ADD COLUMN sent_day BIGINT;
