//! Authenticated submission (P1, O3): who may send, as which addresses, and how much.

use std::net::IpAddr;

use postfach_store::{Address, MailService, Tx};

use crate::error::{Error, Result};
use crate::mail::header_block::HeaderBlock;
use crate::rules::o2_dkim_authority::{self, Producer};
use crate::{Directory, secret, validate};

/// The addresses a mailbox owns: its own address first, then its aliases. P1 (what its login
/// may send as), O2 (what may be signed for it) and the autoresponder's alternate sender all
/// use this one list.
pub(crate) async fn own_addresses(
    tx: &mut dyn Tx,
    service_id: i64,
    a: &Address,
) -> Result<Vec<String>> {
    let mut own = vec![format!("{}@{}", a.local_part, a.domain)];
    for al in tx.alias_list(service_id).await? {
        if al.address_id == a.id {
            own.push(format!("{}@{}", al.local_part, al.domain));
        }
    }
    Ok(own)
}

/// A mailbox logged in with its mail password (SMTP AUTH now; IMAP/POP3 later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxLogin {
    pub address_id: i64,
    /// Its mail service (what [`Directory::session_watch`] watches).
    pub service_id: i64,
    pub address: String,
    pub domain: String,
    /// The envelope senders and `From:` addresses this login may use: its address and its
    /// aliases (P1, "sender mismatch" otherwise).
    pub senders: Vec<String>,
    /// O3: recipients per rolling 24 h, from the mail service's offer.
    pub daily_limit: i64,
    /// M9: the mail service is in maintenance.
    pub maintenance: bool,
}

impl Directory {
    /// Checks a mailbox login (username = the full address, P1). Failures are throttled per
    /// (login, client) and per client (S4) before the password is even looked at.
    pub async fn authenticate_mailbox(
        &self,
        login: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<MailboxLogin> {
        let Some(ip) = client else {
            return self.authenticate_mailbox_checked(login, password).await;
        };
        let attempt = self.login_throttle().begin(login, ip, self.now()).await;
        let attempt = match attempt {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(%ip, login, "mailbox login throttled");
                return Err(e);
            }
        };
        let result = self.authenticate_mailbox_checked(login, password).await;
        match &result {
            Ok(_) => attempt.succeeded(),
            Err(e) => tracing::info!(%ip, login, error = %e, "failed mailbox login"),
        }
        result
    }

    async fn authenticate_mailbox_checked(
        &self,
        login: &str,
        password: &str,
    ) -> Result<MailboxLogin> {
        let denied = || Error::Unauthenticated("authentication failed".into());
        let Ok((local, domain)) = validate::address(login) else {
            secret::verify_password(password, secret::DUMMY_HASH).await;
            return Err(denied());
        };
        let found = {
            let mut tx = self.store.begin().await?;
            match tx.service_by_domain(&domain).await? {
                Some(svc) => tx.address_get(svc.id, &local).await?.map(|a| (svc, a)),
                None => None,
            }
        };
        let Some((svc, a)) = found else {
            secret::verify_password(password, secret::DUMMY_HASH).await;
            return Err(denied());
        };
        if !secret::verify_password(password, &a.password_hash).await {
            return Err(denied());
        }
        let mut tx = self.store.begin().await?;
        let senders = own_addresses(&mut *tx, svc.id, &a).await?;
        drop(tx);
        let daily_limit = self.daily_limit(&svc);
        Ok(MailboxLogin {
            address_id: a.id,
            service_id: svc.id,
            address: senders[0].clone(),
            domain: svc.domain,
            senders,
            daily_limit,
            maintenance: svc.maintenance,
        })
    }

    /// O3: the daily sending limit of a mail service's addresses, from its offer.
    pub(crate) fn daily_limit(&self, svc: &MailService) -> i64 {
        self.policy
            .offers
            .get(&svc.offer)
            .map_or(0, |o| o.daily_send_limit)
    }

    /// O2: the domain whose DKIM key signs an outgoing queue entry (`source` and
    /// `producer_id` as queued; `message` as it leaves), or `None` for no signature.
    pub async fn dkim_signing_domain(
        &self,
        source: &str,
        producer_id: Option<i64>,
        message: &[u8],
    ) -> Result<Option<String>> {
        let author = HeaderBlock::parse(message)
            .ok()
            .and_then(|b| b.author().ok());
        let mailbox = match producer_id {
            Some(id) => {
                let mut tx = self.store.begin_read().await?;
                match tx.address_by_id(id).await? {
                    Some(a) => match tx.service_by_domain(&a.domain).await? {
                        Some(svc) => Some((own_addresses(&mut *tx, svc.id, &a).await?, a.domain)),
                        None => None,
                    },
                    None => None,
                }
            }
            None => None,
        };
        let hostname = self.policy.platform.hostname.as_str();
        let producer = match (source, &mailbox) {
            ("submission" | "autoreply" | "reject", Some((own, _))) => Producer::Mailbox { own },
            ("forward", Some((_, domain))) => Producer::Forward {
                mailbox_domain: domain,
            },
            ("dsn" | "notice", _) => Producer::Platform { hostname },
            // Inbound relays, redirects of a message a Sieve script edited ("forward-edited":
            // its From may be anything the script wrote), and anything whose producer is
            // unknown (entries queued before producers were recorded, a deleted mailbox): no
            // signature.
            _ => Producer::Relay,
        };
        Ok(o2_dkim_authority::signing_domain(producer, author.as_ref()))
    }

    /// P1: whether `login` may use `address` as envelope sender or author.
    pub async fn may_send_as(&self, login: &MailboxLogin, address: &str) -> Result<bool> {
        // Whether the address is itself some mailbox's address or alias here (a local part
        // hosted addresses cannot have, such as one with `+`, is nobody's).
        let taken = match validate::address(address) {
            Ok((local, domain)) => {
                let mut tx = self.store.begin_read().await?;
                match tx.service_by_domain(&domain).await? {
                    Some(svc) => {
                        tx.address_get(svc.id, &local).await?.is_some()
                            || tx.alias_get(svc.id, &local).await?.is_some()
                    }
                    None => false,
                }
            }
            Err(_) => false,
        };
        Ok(crate::rules::p1_sender_ownership::may_send_as(
            &login.senders,
            address,
            taken,
        ))
    }

    /// O3: recipients this address sent to in the last 24 hours.
    pub async fn sent_last_24h(&self, address_id: i64) -> Result<i64> {
        let mut tx = self.store.begin().await?;
        Ok(tx
            .send_log_sum(
                address_id,
                self.now() - crate::rules::o3_daily_sending::WINDOW_SECONDS,
            )
            .await?)
    }
}
