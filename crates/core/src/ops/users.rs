//! User accounts of the Manager (M1, S1): login e-mail + argon2id password, roles per
//! organization, product grants for collaborators and externals.

use postfach_store::{Membership, NewUser, Tx, User};
use serde_json::json;

use crate::access::{Need, Standing};
use crate::error::{Error, Result};
use crate::model::{GrantLevel, GrantView, MembershipView, NewUserView, Role, UserView, rfc3339};
use crate::rules::m1_grants_and_roles as m1;
use crate::{Actor, Directory, secret, validate};

impl Directory {
    pub(crate) async fn user_view(
        &self,
        tx: &mut dyn Tx,
        user: &User,
        viewer: &Actor,
    ) -> Result<UserView> {
        let all_visible = viewer.is_operator() || viewer.login() == Some(user.login.as_str());
        let mut memberships = Vec::new();
        for m in tx.memberships_of_user(user.id).await? {
            let visible = all_visible
                || matches!(
                    self.standing(tx, viewer, m.org_id).await?,
                    Standing::Member(r) if r.manages_everything()
                );
            if visible {
                memberships.push(MembershipView {
                    org: m.org_name,
                    role: Role::parse(&m.role)?,
                });
            }
        }
        let mut grants = Vec::new();
        for g in tx.grants_of_user(user.id).await? {
            let org_visible = all_visible
                || tx
                    .service_by_id(g.service_id)
                    .await?
                    .is_some_and(|s| memberships.iter().any(|m| m.org == s.org_name));
            if org_visible {
                grants.push(GrantView {
                    service: g.domain,
                    level: GrantLevel::parse(&g.level)?,
                });
            }
        }
        Ok(UserView {
            login: user.login.clone(),
            is_operator: user.is_operator,
            memberships,
            grants,
            created_at: rfc3339(user.created_at),
            last_login_at: user.last_login_at.map(rfc3339),
        })
    }

    /// A member of organization `org_id`. A login without an account and an account that is
    /// not a member get the same answer: the organization's administrators learn nothing about
    /// accounts outside it (M1).
    async fn load_member(
        &self,
        tx: &mut dyn Tx,
        org_id: i64,
        org: &str,
        login: &str,
    ) -> Result<(User, Membership)> {
        let none = || Error::not_found("member", format!("{} of {org}", login.trim()));
        let Ok(login) = validate::login(login) else {
            return Err(none());
        };
        let user = tx.user_by_login(&login).await?.ok_or_else(none)?;
        let m = tx.membership_get(org_id, user.id).await?.ok_or_else(none)?;
        Ok((user, m))
    }

    pub(crate) async fn load_user(&self, tx: &mut dyn Tx, login: &str) -> Result<User> {
        let login = validate::login(login)?;
        tx.user_by_login(&login)
            .await?
            .ok_or_else(|| Error::not_found("user", login))
    }

    fn check_manager_password(&self, login: &str, password: &str) -> Result<()> {
        let local = login.split('@').next().unwrap_or(login);
        crate::rules::s1_passwords::strong_enough(password, &self.policy.passwords, Some(local))
    }

    /// First run: creates the platform's first operator account if there is none yet, and
    /// returns its generated password (to be printed once). `None` when an operator exists.
    pub async fn bootstrap_operator(&self, login: &str) -> Result<Option<(String, String)>> {
        let login = validate::login(login)?;
        {
            let mut tx = self.store.begin().await?;
            if tx.operator_count().await? > 0 {
                return Ok(None);
            }
        }
        let password = secret::generate_password();
        let hash = secret::hash_password(&password).await?;
        let mut tx = self.store.begin_write().await?;
        if tx.operator_count().await? > 0 {
            return Ok(None);
        }
        if tx.user_by_login(&login).await?.is_some() {
            return Err(Error::duplicate("user", login));
        }
        tx.user_insert(
            &NewUser {
                login: login.clone(),
                password_hash: hash,
                is_operator: true,
            },
            self.now(),
        )
        .await?;
        self.audit(
            &mut *tx,
            &Actor::System,
            None,
            "user.create_operator",
            &login,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(Some((login, password)))
    }

    /// The actor for `--as LOGIN` on the CLI.
    pub async fn actor_for_login(&self, login: &str) -> Result<Actor> {
        let mut tx = self.store.begin().await?;
        let u = self.load_user(&mut *tx, login).await?;
        Ok(Actor::User {
            id: u.id,
            login: u.login,
            is_operator: u.is_operator,
            key: None,
        })
    }

    /// Adds a user to an organization with a role; creates the account if it does not exist
    /// (with `password`, or a generated one that is returned once). Only administrators and
    /// legal representatives add users; only legal representatives appoint legal representatives.
    pub async fn add_user(
        &self,
        actor: &Actor,
        login: &str,
        org: &str,
        role: Role,
        password: Option<&str>,
    ) -> Result<NewUserView> {
        let login = validate::login(login)?;
        // M1: only the platform operator puts accounts into organizations directly; an
        // organization's administrators invite (the same answer whether the login exists).
        if !actor.is_operator() {
            let e = Error::Forbidden(format!(
                "administrators invite accounts: `postfach user invite {login} --org {org} --role {}` (the account joins when its owner accepts)",
                role.as_str()
            ));
            return Err(e);
        }
        if let Some(p) = password {
            self.check_manager_password(&login, p)?;
        }
        {
            // Authorize before spending time on hashing.
            let mut tx = self.store.begin().await?;
            let o = self.load_org(&mut *tx, org).await?;
            let standing = self
                .require_org_admin(&mut *tx, actor, &o, "add users")
                .await?;
            check_may_appoint(standing, role, &o.name)?;
        }
        let (chosen, generated) = secret::given_or_generated(password);
        let hash = secret::hash_password(&chosen).await?;

        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, org).await?;
        let standing = self
            .require_org_admin(&mut *tx, actor, &o, "add users")
            .await?;
        check_may_appoint(standing, role, &o.name)?;
        let now = self.now();
        let (user, generated) = match tx.user_by_login(&login).await? {
            Some(existing) => {
                if password.is_some() {
                    return Err(Error::Conflict(format!(
                        "user {login} already exists; leave out --password to add the existing account to {}",
                        o.name
                    )));
                }
                if let Some(m) = tx.membership_get(o.id, existing.id).await? {
                    return Err(Error::Conflict(format!(
                        "{login} is already a member of {} (role {}); use `user role` to change the role",
                        o.name, m.role
                    )));
                }
                (existing, None)
            }
            None => {
                let u = tx
                    .user_insert(
                        &NewUser {
                            login: login.clone(),
                            password_hash: hash,
                            is_operator: false,
                        },
                        now,
                    )
                    .await?;
                (u, generated)
            }
        };
        tx.membership_upsert(o.id, user.id, role.as_str(), now)
            .await?;
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "user.add",
            &login,
            json!({"org": o.name, "role": role.as_str(), "new_account": generated.is_some() || password.is_some()}),
        )
        .await?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        tx.commit().await?;
        Ok(NewUserView {
            user: view,
            generated_password: generated,
        })
    }

    /// Changes a member's role. An organization always keeps at least one legal
    /// representative once it has one.
    pub async fn set_role(
        &self,
        actor: &Actor,
        login: &str,
        org: &str,
        role: Role,
    ) -> Result<UserView> {
        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, org).await?;
        let standing = self
            .require_org_admin(&mut *tx, actor, &o, "change roles")
            .await?;
        let (user, current) = self.load_member(&mut *tx, o.id, &o.name, login).await?;
        let current = Role::parse(&current.role)?;
        if current == Role::Legal || role == Role::Legal {
            check_may_appoint(standing, Role::Legal, &o.name)?;
        }
        if current == Role::Legal && role != Role::Legal {
            let legal = tx
                .memberships_of_org(o.id)
                .await?
                .iter()
                .filter(|m| m.role == Role::Legal.as_str())
                .count();
            if legal <= 1 {
                return Err(Error::Conflict(format!(
                    "{} is the only legal representative of {}; appoint another one first",
                    user.login, o.name
                )));
            }
        }
        tx.membership_upsert(o.id, user.id, role.as_str(), self.now())
            .await?;
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "user.role",
            &user.login,
            json!({"org": o.name, "from": current.as_str(), "to": role.as_str()}),
        )
        .await?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Sets a Manager password; without one, generates it (S1) and returns it once.
    pub async fn reset_user_password(
        &self,
        actor: &Actor,
        login: &str,
        password: Option<&str>,
    ) -> Result<Option<String>> {
        let (password, generated) = secret::given_or_generated(password);
        self.set_user_password(actor, login, &password).await?;
        Ok(generated)
    }

    /// Sets a Manager password: one's own, or anyone's for operators.
    pub async fn set_user_password(
        &self,
        actor: &Actor,
        login: &str,
        password: &str,
    ) -> Result<()> {
        let login = validate::login(login)?;
        if let Some(k) = crate::access::key_of(actor) {
            k.may_manage_credentials()?;
        }
        if !(actor.is_operator() || actor.login() == Some(login.as_str())) {
            return Err(Error::Forbidden(
                "only the account itself or a platform operator may set its password".into(),
            ));
        }
        self.check_manager_password(&login, password)?;
        let hash = secret::hash_password(password).await?;
        let mut tx = self.store.begin_write().await?;
        let user = self.load_user(&mut *tx, &login).await?;
        tx.user_set_password(user.id, &hash).await?;
        self.audit(&mut *tx, actor, None, "user.password", &login, json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_user(&self, actor: &Actor, login: &str) -> Result<UserView> {
        let mut tx = self.store.begin().await?;
        let user = self.load_user(&mut *tx, login).await?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        let is_self = actor.login() == Some(user.login.as_str());
        if !(actor.is_operator() || is_self || !view.memberships.is_empty()) {
            return Err(Error::not_found("user", &user.login));
        }
        Ok(view)
    }

    /// Members of an organization (for its members and operators).
    pub async fn list_users(&self, actor: &Actor, org: &str) -> Result<Vec<UserView>> {
        let mut tx = self.store.begin().await?;
        let o = self.load_org(&mut *tx, org).await?;
        let standing = self.require_org_member(&mut *tx, actor, &o).await?;
        // M1: collaborators and externals see what they were granted, not the organization's
        // people (nor when each logged in): the list holds themselves only.
        let only_self = match standing {
            Standing::Member(role) if !role.manages_everything() => actor.login(),
            _ => None,
        };
        let org_services: Vec<String> = tx
            .service_list(Some(o.id))
            .await?
            .into_iter()
            .map(|s| s.domain)
            .collect();
        let mut out = Vec::new();
        for m in tx.memberships_of_org(o.id).await? {
            if let Some(u) = tx.user_by_id(m.user_id).await? {
                if only_self.is_some_and(|me| me != u.login) {
                    continue;
                }
                let mut v = self.user_view(&mut *tx, &u, actor).await?;
                // Members see each other's role here, not their other organizations.
                v.memberships.retain(|mv| mv.org == o.name);
                if v.memberships.is_empty() {
                    v.memberships.push(MembershipView {
                        org: o.name.clone(),
                        role: Role::parse(&m.role)?,
                    });
                }
                v.grants.retain(|g| org_services.contains(&g.service));
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Grants a collaborator or external member `use` or `manage` on one mail service (M1).
    pub async fn grant(
        &self,
        actor: &Actor,
        login: &str,
        domain: &str,
        level: GrantLevel,
    ) -> Result<UserView> {
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(
            &mut *tx,
            actor,
            &svc,
            Need::Admin,
            "grant access to its products",
        )
        .await?;
        let (user, m) = self
            .load_member(&mut *tx, svc.org_id, &svc.org_name, login)
            .await?;
        if Role::parse(&m.role)?.manages_everything() {
            return Err(Error::Conflict(format!(
                "{} is {} of {} and already manages every product",
                user.login, m.role, svc.org_name
            )));
        }
        tx.grant_set(user.id, svc.id, level.as_str(), self.now())
            .await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "user.grant",
            &user.login,
            json!({"service": svc.domain, "level": level.as_str()}),
        )
        .await?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn revoke(&self, actor: &Actor, login: &str, domain: &str) -> Result<UserView> {
        let mut tx = self.store.begin_write().await?;
        let svc = self.load_service(&mut *tx, domain).await?;
        self.require_service(
            &mut *tx,
            actor,
            &svc,
            Need::Admin,
            "revoke access to its products",
        )
        .await?;
        let (user, _) = self
            .load_member(&mut *tx, svc.org_id, &svc.org_name, login)
            .await?;
        if !tx.grant_delete(user.id, svc.id).await? {
            return Err(Error::not_found(
                "grant",
                format!("of {} on {}", user.login, svc.domain),
            ));
        }
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "user.revoke",
            &user.login,
            json!({"service": svc.domain}),
        )
        .await?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        tx.commit().await?;
        Ok(view)
    }
}

/// The role of the member who appoints (`None`: the platform operator), for M1.
pub(crate) fn appointer(standing: Standing) -> Option<Role> {
    match standing {
        Standing::Member(r) => Some(r),
        _ => None,
    }
}

/// Only legal representatives (and operators) appoint or remove legal representatives.
fn check_may_appoint(standing: Standing, role: Role, org: &str) -> Result<()> {
    m1::may_appoint(appointer(standing), role, org)
}
