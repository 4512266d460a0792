//! Addresses (M3), aliases (M4), the catchall (M5), forwarding targets (M6/F11) and the
//! mailbox user's own rights (M11).

use postfach_store::{Address, Alias, MailService, NewAddress, Tx};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::access::Need;
use crate::error::{Error, Result};
use crate::model::{AddressView, AliasView, NewAddressView, rfc3339};
use crate::rules::m6_new_addresses as m6;
use crate::rules::m11_mailbox_user_rights as m11;
use crate::validate::CATCHALL;
use crate::{Actor, Directory, secret, validate};

const MIB: i64 = 1024 * 1024;
/// Forwarding fan-out bound: more targets than this is a mailing list, not a forward.
const MAX_FORWARDS: usize = 10;

/// Changes to an address; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressChanges {
    /// Storage quota in MiB.
    pub storage_quota_mib: Option<i64>,
    /// Replaces the forwarding targets (empty list: no forwarding).
    pub forward_to: Option<Vec<String>>,
    /// Keep a copy in the mailbox when forwarding.
    pub forward_keep_copy: Option<bool>,
    /// M11: whether the mailbox user may change the password themselves.
    pub may_change_password: Option<bool>,
    /// M11: … the autoresponder.
    pub may_change_autoresponder: Option<bool>,
    /// M11: … the special-folder mapping.
    pub may_change_folders: Option<bool>,
}

/// A new address as the rules need it (from the CLI/API or a CSV row).
pub(crate) struct AddressSpec<'a> {
    pub local: &'a str,
    pub password_hash: String,
    pub storage_quota_bytes: Option<i64>,
    pub forward_to: Vec<String>,
    pub forward_keep_copy: bool,
}

pub(crate) fn check_forwards(targets: &[String], own: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        let t = validate::external_address(t, "forwarding address")?;
        if t.eq_ignore_ascii_case(own) {
            return Err(Error::invalid(
                "forwarding address",
                format!("{own} cannot forward to itself"),
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&t)) {
            out.push(t);
        }
    }
    if out.len() > MAX_FORWARDS {
        return Err(Error::invalid(
            "forwarding address",
            format!("at most {MAX_FORWARDS} forwarding addresses"),
        ));
    }
    Ok(out)
}

fn alias_view(al: &Alias) -> AliasView {
    AliasView {
        alias: format!("{}@{}", al.local_part, al.domain),
        target: format!("{}@{}", al.target_local_part, al.domain),
        created_at: rfc3339(al.created_at),
    }
}

fn storage_bytes(mib: i64) -> Result<i64> {
    if !(1..=(1 << 30)).contains(&mib) {
        return Err(Error::invalid(
            "storage quota",
            "give a size in MiB of at least 1",
        ));
    }
    Ok(mib * MIB)
}

impl Directory {
    pub(crate) async fn address_view(&self, tx: &mut dyn Tx, a: &Address) -> Result<AddressView> {
        let aliases = tx
            .alias_list(a.service_id)
            .await?
            .into_iter()
            .filter(|l| l.address_id == a.id)
            .map(|l| format!("{}@{}", l.local_part, l.domain))
            .collect();
        Ok(AddressView {
            address: format!("{}@{}", a.local_part, a.domain),
            local_part: a.local_part.clone(),
            domain: a.domain.clone(),
            is_catchall: a.local_part == CATCHALL,
            aliases,
            forward_to: tx.forwards_get(a.id).await?,
            forward_keep_copy: a.forward_keep_copy,
            storage_used_bytes: a.storage_used_bytes,
            storage_quota_bytes: a.storage_quota_bytes,
            may_change_password: a.may_change_password,
            may_change_autoresponder: a.may_change_autoresponder,
            may_change_folders: a.may_change_folders,
            created_at: rfc3339(a.created_at),
            last_login_at: a.last_login_at.map(rfc3339),
        })
    }

    /// Every rule a new address must pass, in the order a user would want to hear them: the
    /// name (catchall on the offer, taken by an address or alias), then the service's quota
    /// (M2), then the rolling 24 h creation limit (M6). Run once without the lock to fail fast
    /// (before hashing a password) and again under the lock, where it is authoritative.
    pub(crate) async fn check_new_address(
        &self,
        tx: &mut dyn Tx,
        svc: &MailService,
        local: &str,
    ) -> Result<()> {
        let facts = m6::Facts {
            local,
            domain: &svc.domain,
            offer: &svc.offer,
            catchall_allowed: self.offer(&svc.offer)?.catchall,
            address_exists: tx.address_get(svc.id, local).await?.is_some(),
            alias_exists: tx.alias_get(svc.id, local).await?.is_some(),
            addresses: tx.address_count(svc.id).await?,
            address_quota: svc.address_quota,
            created_last_24h: tx.creations_since(svc.id, self.now() - 24 * 3600).await?,
            creation_limit: self.new_address_limit(svc),
        };
        m6::may_create(&facts)
    }

    /// Creates an address in an open write transaction: locks the service, re-checks every
    /// rule, inserts address, forwards and creation-log entry, and audits.
    pub(crate) async fn insert_address(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        svc: &MailService,
        spec: AddressSpec<'_>,
        via: &str,
    ) -> Result<Address> {
        tx.lock_service(svc.id).await?;
        // Re-read under the lock: quota or offer may have changed since the caller loaded it.
        let svc = tx
            .service_by_id(svc.id)
            .await?
            .ok_or_else(|| Error::not_found("mail service", &svc.domain))?;
        self.check_new_address(tx, &svc, spec.local).await?;
        let quota = match spec.storage_quota_bytes {
            Some(b) => b,
            None => self.offer(&svc.offer)?.storage_per_address_mib * MIB,
        };
        let now = self.now();
        let a = tx
            .address_insert(
                &NewAddress {
                    service_id: svc.id,
                    local_part: spec.local.to_string(),
                    password_hash: spec.password_hash,
                    storage_quota_bytes: quota,
                    forward_keep_copy: spec.forward_keep_copy,
                },
                now,
            )
            .await?;
        if !spec.forward_to.is_empty() {
            tx.forwards_set(a.id, &spec.forward_to).await?;
        }
        self.create_default_folders(tx, a.id).await?;
        // M8: the service's default template, in the same transaction.
        let template = self.apply_default_template(tx, &svc, &a).await?;
        tx.creation_log_insert(svc.id, spec.local, now).await?;
        self.audit(
            tx,
            actor,
            Some(svc.org_id),
            "address.create",
            &format!("{}@{}", a.local_part, a.domain),
            json!({
                "via": via,
                "storage_quota_bytes": quota,
                "forward_to": spec.forward_to,
                "forward_keep_copy": spec.forward_keep_copy,
                "template": template,
            }),
        )
        .await?;
        Ok(a)
    }

    /// M3: creates `local@domain` with a mail password that passes the strength rule.
    /// Creates an address (M3); without a password one is generated (S1: strong by
    /// construction) and returned once. Every front end (CLI, API, web) creates addresses
    /// through here, so "no password given" means the same everywhere.
    pub async fn create_address(
        &self,
        actor: &Actor,
        address: &str,
        password: Option<&str>,
        storage_quota_mib: Option<i64>,
    ) -> Result<NewAddressView> {
        let (password, generated) = secret::given_or_generated(password);
        let address = self
            .add_address(actor, address, &password, storage_quota_mib)
            .await?;
        Ok(NewAddressView {
            address,
            generated_password: generated,
        })
    }

    /// Sets an address's mail password; without one, generates it and returns it once.
    pub async fn reset_address_password(
        &self,
        actor: &Actor,
        address: &str,
        password: Option<&str>,
    ) -> Result<Option<String>> {
        let (password, generated) = secret::given_or_generated(password);
        self.set_address_password(actor, address, &password).await?;
        Ok(generated)
    }

    pub async fn add_address(
        &self,
        actor: &Actor,
        address: &str,
        password: &str,
        storage_quota_mib: Option<i64>,
    ) -> Result<AddressView> {
        let (local, domain) = validate::address(address)?;
        crate::rules::s1_passwords::strong_enough(password, &self.policy.passwords, Some(&local))?;
        let storage = storage_quota_mib.map(storage_bytes).transpose()?;
        {
            let mut tx = self.store.begin().await?;
            let svc = self.load_service(&mut *tx, &domain).await?;
            self.require_service(&mut *tx, actor, &svc, Need::Manage, "create addresses")
                .await?;
            self.check_new_address(&mut *tx, &svc, &local).await?;
        }
        let hash = secret::hash_password(password).await?;
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, &domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "create addresses")
            .await?;
        let spec = AddressSpec {
            local: &local,
            password_hash: hash,
            storage_quota_bytes: storage,
            forward_to: Vec::new(),
            forward_keep_copy: true,
        };
        let a = self
            .insert_address(&mut *tx, actor, &svc, spec, "single")
            .await?;
        let view = self.address_view(&mut *tx, &a).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Sets an address's mail password (IMAP/SMTP), as a manager of its service.
    pub async fn set_address_password(
        &self,
        actor: &Actor,
        address: &str,
        password: &str,
    ) -> Result<()> {
        let (local, _) = validate::address(address)?;
        crate::rules::s1_passwords::strong_enough(password, &self.policy.passwords, Some(&local))?;
        {
            let mut tx = self.store.begin().await?;
            let (svc, _) = self.load_address(&mut *tx, address).await?;
            self.require_service(&mut *tx, actor, &svc, Need::Manage, "change mail passwords")
                .await?;
        }
        let hash = secret::hash_password(password).await?;
        let mut tx = self.store.begin_write().await?;
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "change mail passwords")
            .await?;
        tx.address_set_password(a.id, &hash).await?;
        let target = format!("{}@{}", a.local_part, a.domain);
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "address.password",
            &target,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// M11: the mailbox user changes their own password, if the administrator allows it.
    pub async fn change_own_password(&self, address: &str, old: &str, new: &str) -> Result<()> {
        let (local, _) = validate::address(address)?;
        let a = {
            let mut tx = self.store.begin().await?;
            self.load_address(&mut *tx, address)
                .await
                .map_err(|_| Error::Unauthenticated("wrong address or password".into()))?
                .1
        };
        if !secret::verify_password(old, &a.password_hash).await {
            return Err(Error::Unauthenticated("wrong address or password".into()));
        }
        m11::mailbox_user_may(&a, m11::Right::Password)?;
        crate::rules::s1_passwords::strong_enough(new, &self.policy.passwords, Some(&local))?;
        let hash = secret::hash_password(new).await?;
        let mut tx = self.store.begin_write().await?;
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        // Again where it is written: the right may have been revoked meanwhile.
        m11::mailbox_user_may(&a, m11::Right::Password)?;
        tx.address_set_password(a.id, &hash).await?;
        let who = format!("{}@{}", a.local_part, a.domain);
        self.audit(
            &mut *tx,
            &Actor::Mailbox(who.clone()),
            Some(svc.org_id),
            "address.password",
            &who,
            json!({"self": true}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an address together with its aliases and forwarding settings.
    pub async fn delete_address(&self, actor: &Actor, address: &str) -> Result<AddressView> {
        let mut tx = self.store.begin_write().await?;
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "delete addresses")
            .await?;
        tx.lock_service(svc.id).await?;
        let view = self.address_view(&mut *tx, &a).await?;
        tx.address_delete(a.id).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "address.delete",
            &view.address,
            json!({"aliases_removed": view.aliases}),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn get_address(&self, actor: &Actor, address: &str) -> Result<AddressView> {
        let mut tx = self.store.begin().await?;
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Use, "see its addresses")
            .await?;
        self.address_view(&mut *tx, &a).await
    }

    /// M7: the addresses of a mail service, optionally only those whose address or one of
    /// whose aliases contains `search`.
    pub async fn list_addresses(
        &self,
        actor: &Actor,
        domain: &str,
        search: Option<&str>,
    ) -> Result<Vec<AddressView>> {
        let mut tx = self.store.begin().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Use, "see its addresses")
            .await?;
        let needle = search.map(|s| s.trim().to_lowercase());
        let mut out = Vec::new();
        for a in tx.address_list(svc.id).await? {
            let v = self.address_view(&mut *tx, &a).await?;
            let hit = needle
                .as_deref()
                .is_none_or(|n| v.address.contains(n) || v.aliases.iter().any(|al| al.contains(n)));
            if hit {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub async fn update_address(
        &self,
        actor: &Actor,
        address: &str,
        ch: &AddressChanges,
    ) -> Result<AddressView> {
        let mut tx = self.store.begin_write().await?;
        let (svc, mut a) = self.load_address(&mut *tx, address).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "change addresses")
            .await?;
        let own = format!("{}@{}", a.local_part, a.domain);
        let mut changed = Map::new();
        if let Some(mib) = ch.storage_quota_mib {
            a.storage_quota_bytes = storage_bytes(mib)?;
            changed.insert("storage_quota_bytes".into(), json!(a.storage_quota_bytes));
        }
        if let Some(targets) = &ch.forward_to {
            let targets = check_forwards(targets, &own)?;
            tx.forwards_set(a.id, &targets).await?;
            changed.insert("forward_to".into(), json!(targets));
        }
        let flags = [
            (
                ch.forward_keep_copy,
                &mut a.forward_keep_copy,
                "forward_keep_copy",
            ),
            (
                ch.may_change_password,
                &mut a.may_change_password,
                "may_change_password",
            ),
            (
                ch.may_change_autoresponder,
                &mut a.may_change_autoresponder,
                "may_change_autoresponder",
            ),
            (
                ch.may_change_folders,
                &mut a.may_change_folders,
                "may_change_folders",
            ),
        ];
        for (new, field, name) in flags {
            if let Some(v) = new {
                *field = v;
                changed.insert(name.into(), json!(v));
            }
        }
        tx.address_update(&a).await?;
        if !changed.is_empty() {
            self.audit(
                &mut *tx,
                actor,
                Some(svc.org_id),
                "address.update",
                &own,
                Value::Object(changed),
            )
            .await?;
        }
        let view = self.address_view(&mut *tx, &a).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// M3: renaming is not possible; the error suggests an alias instead.
    pub async fn rename_address(
        &self,
        actor: &Actor,
        address: &str,
        new_local: &str,
    ) -> Result<AddressView> {
        let mut tx = self.store.begin().await?;
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "change addresses")
            .await?;
        let new_local = validate::local_part(new_local.split('@').next().unwrap_or(new_local))?;
        Err(Error::RenameNotSupported {
            address: format!("{}@{}", a.local_part, a.domain),
            new: format!("{new_local}@{}", a.domain),
        })
    }

    /// M4: an alias delivers to an address of the same mail service.
    pub async fn add_alias(&self, actor: &Actor, alias: &str, target: &str) -> Result<AliasView> {
        let (alias_local, alias_domain) = validate::address(alias)?;
        let (target_local, target_domain) = validate::address(target)?;
        if alias_domain != target_domain {
            return Err(Error::invalid(
                "alias",
                format!(
                    "{alias_local}@{alias_domain} and {target_local}@{target_domain} are in different mail services; an alias belongs to its address's domain"
                ),
            ));
        }
        if alias_local == CATCHALL {
            return Err(Error::invalid(
                "alias",
                "catchall is reserved for the catchall address",
            ));
        }
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, &alias_domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "create aliases")
            .await?;
        tx.lock_service(svc.id).await?;
        let email = format!("{alias_local}@{alias_domain}");
        if tx.address_get(svc.id, &alias_local).await?.is_some() {
            return Err(Error::Duplicate {
                kind: "address",
                name: format!("{email} (an address of that name exists)"),
            });
        }
        if tx.alias_get(svc.id, &alias_local).await?.is_some() {
            return Err(Error::duplicate("alias", email));
        }
        let Some(a) = tx.address_get(svc.id, &target_local).await? else {
            let hint = if tx.alias_get(svc.id, &target_local).await?.is_some() {
                " (it is an alias; point the new alias at an address)"
            } else {
                ""
            };
            return Err(Error::NotFound {
                kind: "address",
                name: format!("{target_local}@{target_domain}{hint}"),
            });
        };
        let al = tx
            .alias_insert(svc.id, &alias_local, a.id, self.now())
            .await?;
        let target = format!("{}@{}", a.local_part, a.domain);
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "alias.create",
            &email,
            json!({"target": target}),
        )
        .await?;
        tx.commit().await?;
        Ok(alias_view(&al))
    }

    pub async fn delete_alias(&self, actor: &Actor, alias: &str) -> Result<AliasView> {
        let (local, domain) = validate::address(alias)?;
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, &domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "delete aliases")
            .await?;
        let email = format!("{local}@{domain}");
        let al = tx
            .alias_get(svc.id, &local)
            .await?
            .ok_or_else(|| Error::not_found("alias", &email))?;
        tx.alias_delete(al.id).await?;
        let view = alias_view(&al);
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "alias.delete",
            &email,
            json!({"target": view.target}),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn list_aliases(&self, actor: &Actor, domain: &str) -> Result<Vec<AliasView>> {
        let mut tx = self.store.begin().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Use, "see its aliases")
            .await?;
        Ok(tx
            .alias_list(svc.id)
            .await?
            .iter()
            .map(alias_view)
            .collect())
    }
}
