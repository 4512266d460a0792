//! O2 DKIM keys and D1 DNS records. Each mail service gets two DKIM keys when it is created —
//! Ed25519 (RFC 8463) and RSA-2048 (RFC 6376) — so that receivers that do not know Ed25519 yet
//! still find a signature they can check. `domain_dns` lists every record a customer must
//! publish for the domain to work and to pass SPF, DKIM and DMARC.

use base64::Engine;
use mail_auth::dkim::generate::DkimKeyPair;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::EncodePublicKey;
use serde::Serialize;
use utoipa::ToSchema;

use postfach_store::{DkimKey, Tx};

use crate::access::Need;
use crate::error::{Error, Result};
use crate::{Actor, Directory};

pub const ED25519: &str = "ed25519-sha256";
pub const RSA: &str = "rsa-sha256";
/// The platform settings key of the ARC sealing key.
const ARC_KEY: &str = "arc_key";

/// A key to sign a domain's outgoing mail with.
#[derive(Debug, Clone)]
pub struct DkimSigningKey {
    pub domain: String,
    pub selector: String,
    /// [`ED25519`] or [`RSA`].
    pub algorithm: String,
    /// PKCS#8 DER (Ed25519) or PKCS#1 DER (RSA).
    pub private_der: Vec<u8>,
}

/// One DNS record to publish.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DnsRecord {
    /// Owner name, fully qualified without the final dot.
    pub name: String,
    /// MX, TXT, CNAME or SRV.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The record data as in a zone file (TXT without quotes).
    pub value: String,
    /// What the record is for.
    pub purpose: String,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Error::Internal("stored DKIM key is not base64".into()))
}

/// (selector, algorithm, private DER, public key for `p=`), generated on the blocking pool
/// (RSA key generation takes a while).
async fn generate_keys(month: String) -> Result<Vec<(String, &'static str, Vec<u8>, String)>> {
    tokio::task::spawn_blocking(move || {
        let fail = |e: mail_auth::Error| Error::Internal(format!("DKIM key generation: {e}"));
        let ed = DkimKeyPair::generate_ed25519().map_err(fail)?;
        let rsa = DkimKeyPair::generate_rsa(2048).map_err(fail)?;
        // DNS publishes RSA keys as SubjectPublicKeyInfo (RFC 6376 §3.6.1, what OpenDKIM and
        // every verifier expect); the generator gives PKCS#1.
        let encoding = |e: String| Error::Internal(format!("DKIM key encoding: {e}"));
        let spki = rsa::RsaPublicKey::from_pkcs1_der(rsa.public_key())
            .map_err(|e| encoding(e.to_string()))?
            .to_public_key_der()
            .map_err(|e| encoding(e.to_string()))?;
        Ok(vec![
            (
                format!("pf-ed{month}"),
                ED25519,
                ed.private_key().to_vec(),
                b64(ed.public_key()),
            ),
            (
                format!("pf-rsa{month}"),
                RSA,
                rsa.private_key().to_vec(),
                b64(spki.as_bytes()),
            ),
        ])
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

impl Directory {
    /// Generates the DKIM keys for a domain (called before the transaction that creates its
    /// mail service: generation is slow, transactions must not be).
    pub(crate) async fn new_dkim_keys(&self) -> Result<Vec<DkimKey>> {
        let month = time::OffsetDateTime::from_unix_timestamp(self.now())
            .map(|t| format!("{:04}{:02}", t.year(), u8::from(t.month())))
            .unwrap_or_else(|_| "0".into());
        Ok(generate_keys(month)
            .await?
            .into_iter()
            .map(|(selector, algorithm, private, public)| DkimKey {
                id: 0,
                domain_id: 0,
                selector,
                algorithm: algorithm.into(),
                private_key: b64(&private),
                public_key: public,
                created_at: 0,
            })
            .collect())
    }

    pub(crate) async fn store_dkim_keys(
        &self,
        tx: &mut dyn Tx,
        domain_id: i64,
        keys: &[DkimKey],
    ) -> Result<()> {
        for k in keys {
            tx.dkim_insert(
                &DkimKey {
                    domain_id,
                    ..k.clone()
                },
                self.now(),
            )
            .await?;
        }
        Ok(())
    }

    /// The keys to sign mail from `domain` with (empty if it is not hosted here).
    pub async fn dkim_signing_keys(&self, domain: &str) -> Result<Vec<DkimSigningKey>> {
        let mut tx = self.store.begin().await?;
        let Some(d) = tx.domain_by_name(domain).await? else {
            return Ok(Vec::new());
        };
        tx.dkim_keys(d.id)
            .await?
            .into_iter()
            .map(|k| {
                Ok(DkimSigningKey {
                    domain: d.name.clone(),
                    selector: k.selector,
                    algorithm: k.algorithm,
                    private_der: unb64(&k.private_key)?,
                })
            })
            .collect()
    }

    /// The platform's ARC sealing key (RFC 8617 §5.1; only rsa-sha256 is defined for ARC),
    /// made on first use and kept with the platform's settings so that every node seals with
    /// the same key. Its public half is in [`Directory::platform_dns`].
    pub async fn arc_signing_key(&self) -> Result<DkimSigningKey> {
        let hostname = self
            .policy
            .platform
            .hostname
            .trim_end_matches('.')
            .to_string();
        let stored = self
            .global_setting_once(ARC_KEY, || async {
                let month = time::OffsetDateTime::from_unix_timestamp(self.now())
                    .map(|t| format!("{:04}{:02}", t.year(), u8::from(t.month())))
                    .unwrap_or_else(|_| "0".into());
                let rsa = generate_keys(month)
                    .await?
                    .into_iter()
                    .find(|k| k.1 == RSA)
                    .ok_or_else(|| Error::Internal("no RSA key generated".into()))?;
                Ok(serde_json::json!({
                    "selector": rsa.0.replace("pf-rsa", "pf-arc"),
                    "private": b64(&rsa.2),
                    "public": rsa.3,
                })
                .to_string())
            })
            .await?;
        let v: serde_json::Value = serde_json::from_str(&stored)
            .map_err(|e| Error::Internal(format!("stored ARC key: {e}")))?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        Ok(DkimSigningKey {
            domain: hostname,
            selector: field("selector"),
            algorithm: RSA.into(),
            private_der: unb64(&field("private"))?,
        })
    }

    /// D1 for the platform itself (operator only): the records of the platform's host name —
    /// the public key of its ARC seal (RFC 8617 §4.1.3: `ARC-Seal` keys are found as DKIM
    /// keys are, at `selector._domainkey.hostname`).
    pub async fn platform_dns(&self, actor: &Actor) -> Result<Vec<DnsRecord>> {
        actor.require_operator("see the platform's DNS records")?;
        self.arc_signing_key().await?;
        let stored = {
            let mut tx = self.store.begin().await?;
            tx.settings_get("global", 0, ARC_KEY).await?
        };
        let v: serde_json::Value = serde_json::from_str(&stored.unwrap_or_default())
            .map_err(|e| Error::Internal(format!("stored ARC key: {e}")))?;
        let host = self.policy.platform.hostname.trim_end_matches('.');
        let spf = match &self.policy.platform.spf_include {
            Some(inc) => format!("v=spf1 a mx include:{inc} -all"),
            None => "v=spf1 a mx -all".into(),
        };
        Ok(vec![
            DnsRecord {
                name: format!(
                    "{}._domainkey.{host}",
                    v["selector"].as_str().unwrap_or_default()
                ),
                rtype: "TXT".into(),
                value: format!(
                    "v=DKIM1; k=rsa; p={}",
                    v["public"].as_str().unwrap_or_default()
                ),
                purpose: "ARC seal of forwarded mail (RFC 8617)".into(),
            },
            DnsRecord {
                name: host.to_string(),
                rtype: "TXT".into(),
                value: spf,
                purpose: "SPF of forwards whose author shares the mailbox's domain: they leave \
                          with an SRS address of this host name (F11)"
                    .into(),
            },
        ])
    }

    /// D1: the records to publish for a domain's mail service.
    pub async fn domain_dns(&self, actor: &Actor, domain: &str) -> Result<Vec<DnsRecord>> {
        let mut tx = self.store.begin().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Use, "see its DNS records")
            .await?;
        let p = &self.policy.platform;
        let d = &svc.domain;
        let host = &p.hostname;
        let rec = |name: String, rtype: &str, value: String, purpose: &str| DnsRecord {
            name,
            rtype: rtype.into(),
            value,
            purpose: purpose.into(),
        };
        let spf = match &p.spf_include {
            Some(inc) => format!("v=spf1 include:{inc} -all"),
            None => "v=spf1 mx -all".to_string(),
        };
        let mut out = vec![
            rec(
                d.clone(),
                "MX",
                format!("10 {host}."),
                "deliver the domain's mail here",
            ),
            rec(
                d.clone(),
                "TXT",
                spf,
                "SPF: only this platform sends for the domain",
            ),
        ];
        let domain_id = tx
            .domain_by_name(d)
            .await?
            .map(|x| x.id)
            .ok_or_else(|| Error::not_found("domain", d))?;
        for k in tx.dkim_keys(domain_id).await? {
            let kind = if k.algorithm == ED25519 {
                "ed25519"
            } else {
                "rsa"
            };
            out.push(rec(
                format!("{}._domainkey.{d}", k.selector),
                "TXT",
                format!("v=DKIM1; k={kind}; p={}", k.public_key),
                "DKIM public key",
            ));
        }
        out.push(rec(
            format!("_dmarc.{d}"),
            "TXT",
            format!("v=DMARC1; p={}", p.dmarc_policy),
            "DMARC policy",
        ));
        out.push(rec(
            format!("autoconfig.{d}"),
            "CNAME",
            format!("{host}."),
            "Thunderbird auto-configuration",
        ));
        out.push(rec(
            format!("autodiscover.{d}"),
            "CNAME",
            format!("{host}."),
            "Outlook auto-discovery",
        ));
        for (service, port) in [
            ("_submission._tcp", p.submission_port),
            ("_submissions._tcp", p.submissions_port),
            ("_imaps._tcp", p.imaps_port),
            ("_pop3s._tcp", p.pop3s_port),
        ] {
            out.push(rec(
                format!("{service}.{d}"),
                "SRV",
                format!("0 1 {port} {host}."),
                "client settings (RFC 6186, RFC 8314)",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_keys_are_usable_for_signing() {
        let keys = generate_keys("202611".into()).await.unwrap();
        assert_eq!(keys[0].0, "pf-ed202611");
        assert_eq!(keys[1].0, "pf-rsa202611");
        let ed = mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(&keys[0].2).unwrap();
        assert_eq!(b64(&ed.public_key()), keys[0].3);
        let rsa =
            mail_auth::common::crypto::RsaKey::<mail_auth::common::crypto::Sha256>::from_key_der(
                rustls_pki_types::PrivateKeyDer::Pkcs1(keys[1].2.as_slice().into()),
            );
        assert!(rsa.is_ok());
        // SubjectPublicKeyInfo of an RSA-2048 key: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A…".
        assert!(
            keys[1].3.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"),
            "{}",
            keys[1].3
        );
        assert_eq!(unb64(&b64(&keys[1].2)).unwrap(), keys[1].2);
    }
}
