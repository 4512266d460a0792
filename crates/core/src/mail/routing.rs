//! F1 recipient resolution: a hosted address, then an alias, then the domain's `catchall`;
//! anything else in a hosted domain does not exist (550 5.1.1). Domains without a mail service
//! here are remote (relaying them needs authentication).

use crate::Directory;
use crate::error::Result;
use crate::validate::{self, CATCHALL};

/// RFC 5321 §4.5.1's reserved, case-insensitive local part.
const POSTMASTER: &str = "postmaster";

/// How a local recipient was found; the autoresponder never answers mail that reached an
/// address only as `catchall` (M5, F10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Address,
    Alias,
    Catchall,
    /// `postmaster` (RFC 5321 §4.5.1) of a domain without such an address or alias.
    Postmaster,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Address => "address",
            Via::Alias => "alias",
            Via::Catchall => "catchall",
            Via::Postmaster => "postmaster",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRcpt {
    pub address_id: i64,
    /// The mail service the address belongs to.
    pub service_id: i64,
    /// The address mail is delivered to (`local@domain`).
    pub address: String,
    pub via: Via,
    pub domain: String,
    pub storage_used_bytes: i64,
    pub storage_quota_bytes: i64,
}

impl LocalRcpt {
    /// M3, asked early (SMTP `RCPT` with the declared size, the end of `DATA`): whether a
    /// message of `size` bytes (0: unknown) would still fit. The delivery decides again on
    /// the usage it writes.
    pub fn has_room(&self, size: i64) -> bool {
        crate::rules::m3_storage_quota::has_room(
            self.storage_used_bytes,
            self.storage_quota_bytes,
            size,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rcpt {
    Local(LocalRcpt),
    /// Not hosted here: `domain` in canonical (ASCII) form.
    Remote {
        domain: String,
    },
    /// A hosted domain without such an address, alias or catchall.
    NoSuchUser,
    /// A valid SRS address of ours (F11): a bounce of forwarded mail, relayed back to the
    /// original sender (`original`, in `domain`) without authentication.
    Reverse {
        original: String,
        domain: String,
    },
}

impl Directory {
    /// F11: a bounce to one of our SRS addresses goes back to where the forwarded message came
    /// from — a hosted mailbox, or a remote address relayed without authentication. An SRS
    /// address we did not make (or too old) does not exist.
    async fn resolve_srs(&self, local: &str) -> Result<Rcpt> {
        let srs = self.srs().await?;
        let Some(original) = srs.reverse(local, self.now()) else {
            return Ok(Rcpt::NoSuchUser);
        };
        let Some((ol, od)) = original.rsplit_once('@') else {
            return Ok(Rcpt::NoSuchUser);
        };
        let Ok(domain) = validate::domain(od) else {
            return Ok(Rcpt::NoSuchUser);
        };
        let mut tx = self.store.begin().await?;
        if tx.service_by_domain(&domain).await?.is_some() {
            drop(tx);
            // One of ours: resolve it like any recipient (but never as SRS again).
            if ol.to_ascii_lowercase().starts_with("srs") {
                return Ok(Rcpt::NoSuchUser);
            }
            return Box::pin(self.resolve_rcpt(&original)).await;
        }
        Ok(Rcpt::Reverse {
            original: format!("{ol}@{domain}"),
            domain,
        })
    }

    /// The canonical form of `domain` if a mail service here serves it (client
    /// auto-configuration answers for hosted domains only).
    pub async fn hosted_domain(&self, domain: &str) -> Result<Option<String>> {
        let Ok(domain) = validate::domain(domain) else {
            return Ok(None);
        };
        let mut tx = self.store.begin().await?;
        Ok(tx.service_by_domain(&domain).await?.map(|_| domain))
    }

    /// The canonical domain and the display name (M2: renamable, the domain stays) of the
    /// mail service that serves `domain`, for client auto-configuration.
    pub async fn hosted_service(&self, domain: &str) -> Result<Option<(String, String)>> {
        let Ok(domain) = validate::domain(domain) else {
            return Ok(None);
        };
        let mut tx = self.store.begin().await?;
        Ok(tx
            .service_by_domain(&domain)
            .await?
            .map(|s| (domain, s.name)))
    }

    /// Resolves an envelope recipient. `user+tag@domain` reaches `user` when no address or
    /// alias is named `user+tag` (RFC 5233 sub-addressing). Errors only for malformed input.
    pub async fn resolve_rcpt(&self, rcpt: &str) -> Result<Rcpt> {
        let (raw_local, raw_domain) = match rcpt.rsplit_once('@') {
            Some(parts) => parts,
            // RFC 5321 §4.5.1: `RCPT TO:<Postmaster>` without a domain must be accepted.
            None if rcpt.eq_ignore_ascii_case(POSTMASTER) => {
                return self.resolve_postmaster(None).await;
            }
            None => return Ok(Rcpt::NoSuchUser),
        };
        let domain = validate::domain(raw_domain)?;
        let full = raw_local.to_ascii_lowercase();
        // Forwards whose author could align with the mailbox's domain carry SRS addresses of
        // the platform's host name (`o2_dkim_authority::forward_envelope_domain`): their
        // bounces come back here.
        let host = self.policy.platform.hostname.trim_end_matches('.');
        if (full.starts_with("srs0=") || full.starts_with("srs1="))
            && domain.eq_ignore_ascii_case(host)
        {
            return self.resolve_srs(raw_local).await;
        }
        let mut tx = self.store.begin_read().await?;
        let Some(svc) = tx.service_by_domain(&domain).await? else {
            return Ok(Rcpt::Remote { domain });
        };
        if full.starts_with("srs0=") || full.starts_with("srs1=") {
            drop(tx);
            return self.resolve_srs(raw_local).await;
        }
        let mut candidates = vec![full.clone()];
        if let Some((base, _tag)) = full.split_once('+')
            && !base.is_empty()
        {
            candidates.push(base.to_string());
        }
        let local = |a: postfach_store::Address, via| {
            Rcpt::Local(LocalRcpt {
                address_id: a.id,
                service_id: a.service_id,
                address: format!("{}@{}", a.local_part, a.domain),
                via,
                domain: a.domain.clone(),
                storage_used_bytes: a.storage_used_bytes,
                storage_quota_bytes: a.storage_quota_bytes,
            })
        };
        for lp in &candidates {
            if let Some(a) = tx.address_get(svc.id, lp).await? {
                return Ok(local(a, Via::Address));
            }
            if let Some(al) = tx.alias_get(svc.id, lp).await?
                && let Some(a) = tx.address_by_id(al.address_id).await?
            {
                return Ok(local(a, Via::Alias));
            }
        }
        if full == POSTMASTER {
            drop(tx);
            return self.resolve_postmaster(Some(&svc)).await;
        }
        if let Some(a) = tx.address_get(svc.id, CATCHALL).await? {
            return Ok(local(a, Via::Catchall));
        }
        Ok(Rcpt::NoSuchUser)
    }

    /// Where `postmaster` of a hosted domain without such an address or alias (or the bare
    /// `postmaster`, `service` None) goes: the first of the service's legal representatives
    /// and administrators, else the address the operator set (`[server] postmaster`), else
    /// the first platform operator — the first of them that is a hosted mailbox (not through
    /// a catchall, which may be another tenant's).
    /// RFC 5321 §4.5.1 requires accepting it for every domain served.
    async fn resolve_postmaster(
        &self,
        service: Option<&postfach_store::MailService>,
    ) -> Result<Rcpt> {
        let mut candidates = Vec::new();
        let mut tx = self.store.begin_read().await?;
        if let Some(svc) = service {
            let mut members = tx.memberships_of_org(svc.org_id).await?;
            members.retain(|m| m.role == "legal" || m.role == "admin");
            // Legal representatives first, then by seniority.
            members.sort_by_key(|m| (m.role != "legal", m.created_at));
            candidates.extend(members.into_iter().map(|m| m.login));
        }
        candidates.extend(self.policy.platform.postmaster.clone());
        candidates.extend(tx.operator_logins().await?);
        drop(tx);
        for c in candidates {
            // A target is an address; its own postmaster never loops back here.
            let Some((local, _)) = c.rsplit_once('@') else {
                continue;
            };
            if local.eq_ignore_ascii_case(POSTMASTER) {
                continue;
            }
            match Box::pin(self.resolve_rcpt(&c)).await {
                Ok(Rcpt::Local(l)) if l.via != Via::Catchall => {
                    return Ok(Rcpt::Local(LocalRcpt {
                        via: Via::Postmaster,
                        ..l
                    }));
                }
                // Only hosted mailboxes: relaying postmaster mail outside would send anyone's
                // forgery from our address, unchecked.
                _ => continue,
            }
        }
        Ok(Rcpt::NoSuchUser)
    }
}
