-- M2: a domain is the organization's once it proved control of it. Keep in step with
-- ../sqlite/0008_domain_ownership.sql.
--
-- verified_at: when control was proved (a TXT record postfach-verify=<verify_token>, the MX
-- pointing at the platform, the platform operator's word); NULL while pending. Domains that
-- existed before count as verified: the platform operator or an administrator of the
-- organization added them when no proof was asked for.
ALTER TABLE domains ADD COLUMN verified_at BIGINT;
ALTER TABLE domains ADD COLUMN verify_token TEXT NOT NULL DEFAULT '';
UPDATE domains SET verified_at = created_at;
