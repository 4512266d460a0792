//! Managing the delivery settings: Sieve scripts (F9, P7), autoresponders (F10),
//! spam and promotions switches (F5, F6), allow/block lists (F7), external-mail marking (F8),
//! signatures (M8). The CLI, the API and ManageSieve call these.
//!
//! Who may: managers of the mail service (Need::Manage) for every address and for the
//! service-wide settings; the mailbox's own user (Actor::Mailbox) for their own address — the
//! autoresponder only if the administrator allows it (M11 `may_change_autoresponder`).

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use postfach_store::{Address, MailService, Tx};

use crate::access::Need;
use crate::error::{Error, Result};
use crate::mail::settings::{
    self, AddressFilters, Autoreplies, Autoreply, BlockAction, MAX_AUTOREPLIES,
    MAX_AUTOREPLY_MESSAGE, MAX_LIST_ENTRIES, MAX_SCRIPTS, MAX_SIGNATURE, Scope, ServiceFilters,
    SieveScript, SieveScripts, Signature, WEEKDAYS,
};
use crate::rules::m11_mailbox_user_rights as m11;
use crate::{Actor, Directory, validate};

/// What a setting applies to: one address, or a whole mail service (`DOMAIN` in the CLI).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Address(MailService, Address),
    Service(MailService),
}

impl Target {
    fn scope(&self) -> Scope {
        match self {
            Target::Address(_, a) => Scope::Address(a.id),
            Target::Service(s) => Scope::Service(s.id),
        }
    }
    fn service(&self) -> &MailService {
        match self {
            Target::Address(s, _) | Target::Service(s) => s,
        }
    }
    fn name(&self) -> String {
        match self {
            Target::Address(_, a) => format!("{}@{}", a.local_part, a.domain),
            Target::Service(s) => s.domain.clone(),
        }
    }
}

/// Whether the autoresponder or something else is being changed (M11 applies to the former).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Filters,
    Autoresponder,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SieveScriptView {
    pub name: String,
    pub active: bool,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutoreplyView {
    #[serde(flatten)]
    pub autoreply: Autoreply,
    /// Whether the schedule would let it answer now.
    pub in_schedule: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListView {
    /// The address or domain the lists belong to.
    pub target: String,
    pub allow: Vec<String>,
    pub block: Vec<String>,
    /// Risks a user should hear of, such as their own address on the allow list (F7: spam
    /// often forges the recipient as its sender).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FilterView {
    pub address: String,
    pub spam: bool,
    pub promotions: bool,
    /// How far the Bayesian classifier has been trained (F5).
    pub bayes: crate::mail::BayesStats,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceFilterView {
    pub domain: String,
    pub block_action: BlockAction,
    pub external_marking: bool,
    pub spam_threshold: f64,
    /// F12: winmail.dat kept beside the files unpacked from it.
    pub tnef_keep_original: bool,
}

/// Which list of [`ListView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Allow,
    Block,
}

impl ListKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "allow" => Ok(ListKind::Allow),
            "block" => Ok(ListKind::Block),
            _ => Err(Error::invalid("list", format!("{s:?}: use allow or block"))),
        }
    }
}

fn same_address(a: &str, b: &str) -> bool {
    validate::address(a).ok() == validate::address(b).ok()
}

/// M11: a Sieve script that the mailbox user stores or activates may only do what the user
/// may change in other ways (`m11::script_needs`); managers of the service are not bound.
fn mailbox_user_may_run(
    actor: &Actor,
    target: &str,
    t: &Target,
    scripts: &[sieve::Sieve],
) -> Result<()> {
    if let (Actor::Mailbox(own), Target::Address(_, a)) = (actor, t)
        && same_address(own, target)
    {
        for script in scripts {
            for right in m11::script_needs(script) {
                m11::mailbox_user_may(a, right)?;
            }
        }
    }
    Ok(())
}

impl Directory {
    /// Resolves `target` (an address or a domain) and checks that `actor` may read
    /// (`write == false`) or change it.
    pub(crate) async fn settings_target(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        target: &str,
        write: bool,
        what: What,
    ) -> Result<Target> {
        let t = if target.contains('@') {
            let (svc, a) = self.load_address(tx, target).await?;
            Target::Address(svc, a)
        } else {
            Target::Service(self.load_service(tx, target).await?)
        };
        if let (Actor::Mailbox(own), Target::Address(_, a)) = (actor, &t)
            && same_address(own, target)
        {
            if write && what == What::Autoresponder {
                m11::mailbox_user_may(a, m11::Right::Autoresponder)?;
            }
            return Ok(t);
        }
        let need = if write { Need::Manage } else { Need::Use };
        self.require_service(tx, actor, t.service(), need, "change delivery settings")
            .await?;
        Ok(t)
    }

    async fn settings_audit(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        t: &Target,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.audit(
            tx,
            actor,
            Some(t.service().org_id),
            action,
            &t.name(),
            detail,
        )
        .await
    }

    // -- Sieve (F9, P7) ---------------------------------------------------------------------

    pub async fn sieve_list(&self, actor: &Actor, target: &str) -> Result<Vec<SieveScriptView>> {
        let mut tx = self.store.begin().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, false, What::Filters)
            .await?;
        let doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        Ok(doc
            .scripts
            .iter()
            .map(|s| SieveScriptView {
                name: s.name.clone(),
                active: s.active,
                size: s.source.len(),
            })
            .collect())
    }

    pub async fn sieve_get(&self, actor: &Actor, target: &str, name: &str) -> Result<SieveScript> {
        let mut tx = self.store.begin().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, false, What::Filters)
            .await?;
        let doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        doc.get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("Sieve script", name))
    }

    /// Stores (creates or replaces) a script after compiling it; `activate` makes it the
    /// active one.
    pub async fn sieve_put(
        &self,
        actor: &Actor,
        target: &str,
        name: &str,
        source: &str,
        activate: bool,
    ) -> Result<SieveScriptView> {
        let name = settings::script_name(name)?;
        let compiled = settings::check_sieve(source)?;
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        mailbox_user_may_run(actor, target, &t, std::slice::from_ref(&compiled))?;
        let mut doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        match doc.scripts.iter_mut().find(|s| s.name == name) {
            Some(s) => s.source = source.to_string(),
            None => {
                if doc.scripts.len() >= MAX_SCRIPTS {
                    return Err(Error::Conflict(format!(
                        "{} already has {MAX_SCRIPTS} Sieve scripts; delete one first",
                        t.name()
                    )));
                }
                doc.scripts.push(SieveScript {
                    name: name.clone(),
                    source: source.to_string(),
                    active: false,
                });
            }
        }
        if activate {
            for s in &mut doc.scripts {
                s.active = s.name == name;
            }
        }
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "sieve.put",
            json!({"name": name, "activate": activate}),
        )
        .await?;
        tx.commit().await?;
        let s = doc.get(&name).expect("just stored");
        Ok(SieveScriptView {
            name: s.name.clone(),
            active: s.active,
            size: s.source.len(),
        })
    }

    /// Makes `name` the active script; `None` deactivates all (RFC 5804 SETACTIVE "").
    pub async fn sieve_activate(
        &self,
        actor: &Actor,
        target: &str,
        name: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        let mut doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        if let Some(n) = name
            && doc.get(n).is_none()
        {
            return Err(Error::not_found("Sieve script", n));
        }
        if let Some(n) = name {
            let active = doc.get(n).map(|s| s.source.as_str()).unwrap_or_default();
            let active = settings::check_sieve(active)?;
            let mut compiled = vec![active];
            // A script that includes others (RFC 6609) runs them too: all stored scripts
            // count then.
            if m11::script_includes(&compiled[0]) {
                for s in &doc.scripts {
                    compiled.push(settings::check_sieve(&s.source)?);
                }
            }
            mailbox_user_may_run(actor, target, &t, &compiled)?;
        }
        for s in &mut doc.scripts {
            s.active = Some(s.name.as_str()) == name;
        }
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(&mut *tx, actor, &t, "sieve.activate", json!({"name": name}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a script; the active one cannot be deleted (RFC 5804 §2.10: deactivate first).
    pub async fn sieve_delete(&self, actor: &Actor, target: &str, name: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        let mut doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        let Some(pos) = doc.scripts.iter().position(|s| s.name == name) else {
            return Err(Error::not_found("Sieve script", name));
        };
        if doc.scripts[pos].active {
            return Err(Error::Conflict(format!(
                "{name} is the active script; deactivate it first"
            )));
        }
        doc.scripts.remove(pos);
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(&mut *tx, actor, &t, "sieve.delete", json!({"name": name}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn sieve_rename(
        &self,
        actor: &Actor,
        target: &str,
        old: &str,
        new: &str,
    ) -> Result<()> {
        let new = settings::script_name(new)?;
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        let mut doc: SieveScripts = settings::load(&mut *tx, t.scope()).await?;
        if doc.get(&new).is_some() {
            return Err(Error::duplicate("Sieve script", new));
        }
        let s = doc
            .scripts
            .iter_mut()
            .find(|s| s.name == old)
            .ok_or_else(|| Error::not_found("Sieve script", old))?;
        s.name = new.clone();
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "sieve.rename",
            json!({"from": old, "to": new}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // -- Autoresponder (F10) -----------------------------------------------------------------

    async fn address_target(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        address: &str,
        write: bool,
        what: What,
    ) -> Result<Target> {
        if !address.contains('@') {
            return Err(Error::invalid(
                "address",
                format!("{address:?} is not an address like name@example.com"),
            ));
        }
        self.settings_target(tx, actor, address, write, what).await
    }

    pub async fn autoreply_list(&self, actor: &Actor, address: &str) -> Result<Vec<AutoreplyView>> {
        let mut tx = self.store.begin().await?;
        let t = self
            .address_target(&mut *tx, actor, address, false, What::Autoresponder)
            .await?;
        let doc: Autoreplies = settings::load(&mut *tx, t.scope()).await?;
        let now = self.now();
        Ok(doc
            .list
            .into_iter()
            .map(|a| AutoreplyView {
                in_schedule: a.in_schedule(now),
                autoreply: a,
            })
            .collect())
    }

    /// Adds (or, under the same name, replaces) an autoresponder. Validates dates, weekdays,
    /// the alternate sender (the address itself or one of its aliases: addresses the user
    /// owns are the ones verified for them) and the exclusion list.
    pub async fn autoreply_put(
        &self,
        actor: &Actor,
        address: &str,
        new: &Autoreply,
    ) -> Result<AutoreplyView> {
        let mut a = checked_autoreply(new)?;
        let mut tx = self.store.begin_write().await?;
        let t = self
            .address_target(&mut *tx, actor, address, true, What::Autoresponder)
            .await?;
        if let Some(from) = a.from.as_deref().filter(|f| !f.trim().is_empty()) {
            let from = from.trim().to_lowercase();
            let own = self.own_addresses(&mut *tx, &t).await?;
            if !own.contains(&from) {
                return Err(Error::invalid(
                    "from",
                    format!(
                        "{from} is not one of {}'s own addresses ({})",
                        t.name(),
                        own.join(", ")
                    ),
                ));
            }
            a.from = Some(from);
        } else {
            a.from = None;
        }
        let mut doc: Autoreplies = settings::load(&mut *tx, t.scope()).await?;
        upsert_autoreply(&mut doc, &a, &t.name())?;
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "autoreply.put",
            json!({"name": a.name, "active": a.active}),
        )
        .await?;
        tx.commit().await?;
        Ok(AutoreplyView {
            in_schedule: a.in_schedule(self.now()),
            autoreply: a,
        })
    }

    /// The address and its aliases, lower case.
    async fn own_addresses(&self, tx: &mut dyn Tx, t: &Target) -> Result<Vec<String>> {
        let Target::Address(svc, a) = t else {
            return Ok(Vec::new());
        };
        crate::mail::submit::own_addresses(tx, svc.id, a).await
    }

    /// Activates one autoresponder (deactivating any other: one is active at a time) or, with
    /// `active == false`, deactivates it.
    pub async fn autoreply_set_active(
        &self,
        actor: &Actor,
        address: &str,
        name: &str,
        active: bool,
    ) -> Result<()> {
        self.autoreply_edit(actor, address, "autoreply.activate", |doc| {
            let Some(x) = doc.list.iter().position(|x| x.name == name) else {
                return Err(Error::not_found("autoresponder", name));
            };
            if active {
                for (i, y) in doc.list.iter_mut().enumerate() {
                    y.active = i == x;
                }
            } else {
                doc.list[x].active = false;
            }
            Ok(json!({"name": name, "active": active}))
        })
        .await
    }

    pub async fn autoreply_delete(&self, actor: &Actor, address: &str, name: &str) -> Result<()> {
        self.autoreply_edit(actor, address, "autoreply.delete", |doc| {
            let before = doc.list.len();
            doc.list.retain(|x| x.name != name);
            if doc.list.len() == before {
                return Err(Error::not_found("autoresponder", name));
            }
            Ok(json!({"name": name}))
        })
        .await
    }

    async fn autoreply_edit(
        &self,
        actor: &Actor,
        address: &str,
        action: &str,
        edit: impl FnOnce(&mut Autoreplies) -> Result<serde_json::Value>,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let t = self
            .address_target(&mut *tx, actor, address, true, What::Autoresponder)
            .await?;
        let mut doc: Autoreplies = settings::load(&mut *tx, t.scope()).await?;
        let detail = edit(&mut doc)?;
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(&mut *tx, actor, &t, action, detail)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// F10 "reset": forgets whom the autoresponder has answered, so everyone gets the next
    /// reply again. Returns how many senders were forgotten.
    pub async fn autoreply_reset(&self, actor: &Actor, address: &str) -> Result<i64> {
        let mut tx = self.store.begin_write().await?;
        let t = self
            .address_target(&mut *tx, actor, address, true, What::Autoresponder)
            .await?;
        let Target::Address(_, a) = &t else {
            unreachable!("address_target")
        };
        let n = tx.autoreply_sent_clear(a.id, "").await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "autoreply.reset",
            json!({"forgotten": n}),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    // -- Spam, promotions, lists (F5–F8) ----------------------------------------------------

    pub async fn filters_get(&self, actor: &Actor, address: &str) -> Result<FilterView> {
        let mut tx = self.store.begin().await?;
        let t = self
            .address_target(&mut *tx, actor, address, false, What::Filters)
            .await?;
        let f: AddressFilters = settings::load(&mut *tx, t.scope()).await?;
        drop(tx);
        self.filter_view(&t, &f).await
    }

    async fn filter_view(&self, t: &Target, f: &AddressFilters) -> Result<FilterView> {
        let id = match t {
            Target::Address(_, a) => a.id,
            Target::Service(_) => crate::mail::bayes::GLOBAL,
        };
        Ok(FilterView {
            address: t.name(),
            spam: f.spam,
            promotions: f.promotions,
            bayes: self.bayes_stats(id).await?,
        })
    }

    /// F5/F6: the spam filter on or off, and the promotions/social sorting.
    pub async fn filters_set(
        &self,
        actor: &Actor,
        address: &str,
        spam: Option<bool>,
        promotions: Option<bool>,
    ) -> Result<FilterView> {
        let mut tx = self.store.begin_write().await?;
        let t = self
            .address_target(&mut *tx, actor, address, true, What::Filters)
            .await?;
        let mut f: AddressFilters = settings::load(&mut *tx, t.scope()).await?;
        if let Some(s) = spam {
            f.spam = s;
        }
        if let Some(p) = promotions {
            f.promotions = p;
        }
        settings::save(&mut *tx, t.scope(), &f, self.now()).await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "filters.set",
            json!({"spam": f.spam, "promotions": f.promotions}),
        )
        .await?;
        tx.commit().await?;
        self.filter_view(&t, &f).await
    }

    pub async fn service_filters_get(
        &self,
        actor: &Actor,
        domain: &str,
    ) -> Result<ServiceFilterView> {
        let mut tx = self.store.begin().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Use, "see its settings")
            .await?;
        let f: ServiceFilters = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        Ok(service_filter_view(&svc, &f))
    }

    /// F7 block action, F8 external marking and the F5 threshold of a mail service.
    pub async fn service_filters_set(
        &self,
        actor: &Actor,
        domain: &str,
        block_action: Option<BlockAction>,
        external_marking: Option<bool>,
        spam_threshold: Option<f64>,
        tnef_keep_original: Option<bool>,
    ) -> Result<ServiceFilterView> {
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &svc, Need::Manage, "change its filters")
            .await?;
        let mut f: ServiceFilters = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        if let Some(b) = block_action {
            f.block_action = b;
        }
        if let Some(m) = external_marking {
            f.external_marking = m;
        }
        if let Some(k) = tnef_keep_original {
            f.tnef_keep_original = k;
        }
        if let Some(t) = spam_threshold {
            if !(0.5..=100.0).contains(&t) {
                return Err(Error::invalid(
                    "spam threshold",
                    "use a score from 0.5 to 100",
                ));
            }
            f.spam_threshold = t;
        }
        settings::save(&mut *tx, Scope::Service(svc.id), &f, self.now()).await?;
        let view = service_filter_view(&svc, &f);
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "filters.service",
            &svc.domain,
            serde_json::to_value(&view).unwrap_or_default(),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn list_show(&self, actor: &Actor, target: &str) -> Result<ListView> {
        let mut tx = self.store.begin().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, false, What::Filters)
            .await?;
        self.list_view(&mut *tx, &t).await
    }

    async fn list_view(&self, tx: &mut dyn Tx, t: &Target) -> Result<ListView> {
        let (allow, block) = match t {
            Target::Address(..) => {
                let f: AddressFilters = settings::load(tx, t.scope()).await?;
                (f.allow, f.block)
            }
            Target::Service(_) => {
                let f: ServiceFilters = settings::load(tx, t.scope()).await?;
                (f.allow, f.block)
            }
        };
        let mut warnings = Vec::new();
        let own = self.own_addresses(tx, t).await?;
        for o in &own {
            if settings::list_matches(&allow, o) {
                warnings.push(format!(
                    "{o} is on the allow list: spam often forges your own address as its sender, and it would skip the spam filter"
                ));
            }
        }
        if let Target::Service(s) = t
            && allow.iter().any(|e| e == &format!("@{}", s.domain))
        {
            warnings.push(format!(
                "@{} is on the allow list: spam forging any of your own addresses would skip the spam filter",
                s.domain
            ));
        }
        Ok(ListView {
            target: t.name(),
            allow,
            block,
            warnings,
        })
    }

    /// Adds an entry to (or, with `add == false`, removes one from) an allow or block list.
    pub async fn list_change(
        &self,
        actor: &Actor,
        target: &str,
        kind: ListKind,
        entry: &str,
        add: bool,
    ) -> Result<ListView> {
        let entry = settings::list_entry(entry)?;
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        fn apply(list: &mut Vec<String>, entry: &str, add: bool) -> Result<()> {
            if add {
                if list.len() >= MAX_LIST_ENTRIES {
                    return Err(Error::Conflict(format!(
                        "the list already has {MAX_LIST_ENTRIES} entries"
                    )));
                }
                if !list.iter().any(|e| e == entry) {
                    list.push(entry.to_string());
                }
                Ok(())
            } else {
                let before = list.len();
                list.retain(|e| e != entry);
                if list.len() == before {
                    return Err(Error::not_found("list entry", entry));
                }
                Ok(())
            }
        }
        match &t {
            Target::Address(..) => {
                let mut f: AddressFilters = settings::load(&mut *tx, t.scope()).await?;
                let list = match kind {
                    ListKind::Allow => &mut f.allow,
                    ListKind::Block => &mut f.block,
                };
                apply(list, &entry, add)?;
                settings::save(&mut *tx, t.scope(), &f, self.now()).await?;
            }
            Target::Service(_) => {
                let mut f: ServiceFilters = settings::load(&mut *tx, t.scope()).await?;
                let list = match kind {
                    ListKind::Allow => &mut f.allow,
                    ListKind::Block => &mut f.block,
                };
                apply(list, &entry, add)?;
                settings::save(&mut *tx, t.scope(), &f, self.now()).await?;
            }
        }
        let action = match (kind, add) {
            (ListKind::Allow, true) => "list.allow.add",
            (ListKind::Allow, false) => "list.allow.del",
            (ListKind::Block, true) => "list.block.add",
            (ListKind::Block, false) => "list.block.del",
        };
        self.settings_audit(&mut *tx, actor, &t, action, json!({"entry": entry}))
            .await?;
        let view = self.list_view(&mut *tx, &t).await?;
        tx.commit().await?;
        Ok(view)
    }

    // -- Signatures (M8) --------------------------------------------------------------------

    pub async fn signature_get(&self, actor: &Actor, target: &str) -> Result<Signature> {
        let mut tx = self.store.begin().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, false, What::Filters)
            .await?;
        settings::load(&mut *tx, t.scope()).await
    }

    /// Sets the signature of an address or, for a domain, the service-wide one.
    pub async fn signature_set(&self, actor: &Actor, target: &str, text: &str) -> Result<()> {
        if text.len() > MAX_SIGNATURE {
            return Err(Error::invalid(
                "signature",
                format!("at most {MAX_SIGNATURE} bytes"),
            ));
        }
        let mut tx = self.store.begin_write().await?;
        let t = self
            .settings_target(&mut *tx, actor, target, true, What::Filters)
            .await?;
        let doc = Signature {
            text: text.replace("\r\n", "\n"),
        };
        settings::save(&mut *tx, t.scope(), &doc, self.now()).await?;
        self.settings_audit(
            &mut *tx,
            actor,
            &t,
            "signature.set",
            json!({"bytes": text.len()}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn service_filter_view(svc: &MailService, f: &ServiceFilters) -> ServiceFilterView {
    ServiceFilterView {
        domain: svc.domain.clone(),
        block_action: f.block_action,
        external_marking: f.external_marking,
        spam_threshold: f.spam_threshold,
        tnef_keep_original: f.tnef_keep_original,
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryLogView {
    pub at: String,
    /// `sieve-error`, `sieve-reject`, `loop`, `blocked`, …
    pub kind: String,
    pub detail: String,
}

impl Directory {
    /// What the delivery pipeline recorded for an address (Sieve errors, loops stopped,
    /// blocked senders), newest first.
    pub async fn delivery_log(
        &self,
        actor: &Actor,
        address: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryLogView>> {
        let mut tx = self.store.begin().await?;
        let t = self
            .address_target(&mut *tx, actor, address, false, What::Filters)
            .await?;
        let Target::Address(_, a) = &t else {
            unreachable!("address_target")
        };
        Ok(tx
            .delivery_log_list(a.id, limit.clamp(1, 1000))
            .await?
            .into_iter()
            .map(|l| DeliveryLogView {
                at: crate::model::rfc3339(l.at),
                kind: l.kind,
                detail: l.detail,
            })
            .collect())
    }
}

/// An autoresponder's fields checked and normalised (name, message, subject, schedule,
/// weekdays, exclusions); `from` is checked against the address by the caller.
pub(crate) fn checked_autoreply(new: &Autoreply) -> Result<Autoreply> {
    let mut a = new.clone();
    a.name = a.name.trim().to_string();
    if a.name.is_empty() || a.name.chars().count() > 100 || a.name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "use 1 to 100 characters"));
    }
    if a.message.trim().is_empty() || a.message.len() > MAX_AUTOREPLY_MESSAGE {
        return Err(Error::invalid(
            "message",
            format!("write a message of at most {MAX_AUTOREPLY_MESSAGE} bytes"),
        ));
    }
    if a.subject.chars().any(char::is_control) || a.subject.chars().count() > 200 {
        return Err(Error::invalid(
            "subject",
            "one line of at most 200 characters",
        ));
    }
    let start = a
        .start
        .as_deref()
        .map(|s| settings::parse_time("start", s))
        .transpose()?;
    let end = a
        .end
        .as_deref()
        .map(|s| settings::parse_time("end", s))
        .transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(Error::invalid("end", "the end must come after the start"));
    }
    let mut days = Vec::new();
    for d in &a.weekdays {
        let d = d.trim().to_lowercase();
        let d: String = d.chars().take(3).collect();
        if !WEEKDAYS.contains(&d.as_str()) {
            return Err(Error::invalid(
                "weekdays",
                format!("{d:?}: use mon, tue, wed, thu, fri, sat, sun"),
            ));
        }
        if !days.contains(&d) {
            days.push(d);
        }
    }
    a.weekdays = days;
    a.exclude = a
        .exclude
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| settings::list_entry(e))
        .collect::<Result<_>>()?;
    Ok(a)
}

/// Saves `a` into an address's list (replacing one of the same name); an active one
/// deactivates the others (F10: one active at a time).
pub(crate) fn upsert_autoreply(doc: &mut Autoreplies, a: &Autoreply, owner: &str) -> Result<()> {
    match doc.list.iter().position(|x| x.name == a.name) {
        Some(i) => doc.list[i] = a.clone(),
        None if doc.list.len() >= MAX_AUTOREPLIES => {
            return Err(Error::Conflict(format!(
                "{owner} already has {MAX_AUTOREPLIES} autoresponders; delete one first"
            )));
        }
        None => doc.list.push(a.clone()),
    }
    if a.active {
        for x in &mut doc.list {
            x.active = x.name == a.name;
        }
    }
    Ok(())
}
