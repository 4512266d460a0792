//! API credentials: login sessions (bearer tokens with an expiry) and API keys created by an
//! operator or by the account itself. Only the SHA-256 of a token is stored.

use std::net::IpAddr;
use std::sync::Arc;

use postfach_store::{ApiToken, NewToken, Tx};
use serde_json::json;

use crate::access::Need;
use crate::error::{Error, Result};
use crate::model::{ApiKeyView, TokenView, rfc3339};
use crate::rules::m1_grants_and_roles::{ApiKey, KeyScope};
use crate::{Actor, Directory, secret, validate};

const SESSION: &str = "session";
const APIKEY: &str = "apikey";

impl Directory {
    /// Manager login (S1). Unknown logins cost the same time as wrong passwords. Both outcomes
    /// are written to the account's activity log (M12). With the client's address, failures
    /// are throttled (S4) before any password is checked.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<TokenView> {
        let Some(ip) = client else {
            return self.login_checked(login, password).await;
        };
        let attempt = match self.login_throttle().begin(login, ip, self.now()).await {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(%ip, login, "Manager login throttled");
                return Err(e);
            }
        };
        let result = self.login_checked(login, password).await;
        match &result {
            Ok(_) => attempt.succeeded(),
            Err(e) => tracing::info!(%ip, login, error = %e, "failed Manager login"),
        }
        result
    }

    async fn login_checked(&self, login: &str, password: &str) -> Result<TokenView> {
        let denied = || Error::Unauthenticated("wrong login or password".into());
        let Ok(login) = validate::login(login) else {
            // As long as a wrong password: the answer's time tells nothing.
            secret::verify_password(password, secret::DUMMY_HASH).await;
            return Err(denied());
        };
        let user = {
            let mut tx = self.store.begin().await?;
            tx.user_by_login(&login).await?
        };
        let Some(user) = user else {
            secret::verify_password(password, secret::DUMMY_HASH).await;
            return Err(denied());
        };
        let ok = secret::verify_password(password, &user.password_hash).await;
        let actor = Actor::User {
            id: user.id,
            login: user.login.clone(),
            is_operator: user.is_operator,
            key: None,
        };
        let mut tx = self.store.begin_write().await?;
        if !ok {
            self.audit(
                &mut *tx,
                &actor,
                None,
                "user.login_failed",
                &login,
                json!({}),
            )
            .await?;
            tx.commit().await?;
            return Err(denied());
        }
        let now = self.now();
        let token = secret::generate_token("pfs");
        let expires = now + self.policy.api.session_hours * 3600;
        tx.token_insert(
            &NewToken {
                user_id: user.id,
                kind: SESSION.into(),
                name: "login".into(),
                token_hash: secret::token_hash(&token),
                expires_at: Some(expires),
                scope: String::new(),
            },
            now,
        )
        .await?;
        tx.user_touch_login(user.id, now).await?;
        self.audit(&mut *tx, &actor, None, "user.login", &login, json!({}))
            .await?;
        tx.commit().await?;
        Ok(TokenView {
            token,
            user: user.login,
            expires_at: Some(rfc3339(expires)),
        })
    }

    /// The actor behind a bearer token (session or API key).
    pub async fn authenticate_token(&self, token: &str) -> Result<Actor> {
        let invalid = || Error::Unauthenticated("invalid or expired token".into());
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let t = tx
            .token_by_hash(&secret::token_hash(token))
            .await?
            .ok_or_else(invalid)?;
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid());
        }
        let user = tx.user_by_id(t.user_id).await?.ok_or_else(invalid)?;
        let key = if t.kind == APIKEY {
            let scope: KeyScope = if t.scope.is_empty() {
                KeyScope::default()
            } else {
                serde_json::from_str(&t.scope).map_err(|_| invalid())?
            };
            // An organization that is gone is reached by nobody's key (-1 is no id).
            let org_id = match &scope.org {
                Some(name) => Some(tx.org_by_name(name).await?.map_or(-1, |o| o.id)),
                None => None,
            };
            Some(Arc::new(ApiKey {
                id: t.id,
                name: t.name.clone(),
                scope,
                org_id,
            }))
        } else {
            None
        };
        drop(tx);
        // Note usage at most once a minute: a write per API request would serialise them.
        if t.last_used_at.is_none_or(|last| now - last >= 60) {
            let mut tx = self.store.begin_write().await?;
            tx.token_touch(t.id, now).await?;
            tx.commit().await?;
        }
        Ok(Actor::User {
            id: user.id,
            login: user.login,
            // A scoped key of an operator is no operator: its scope must hold.
            is_operator: user.is_operator && key.as_ref().is_none_or(|k| k.scope.is_unlimited()),
            key,
        })
    }

    /// Ends a login session (the token stops working at once).
    pub async fn logout(&self, token: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if let Some(t) = tx.token_by_hash(&secret::token_hash(token)).await?
            && t.kind == SESSION
        {
            tx.token_delete(t.id).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    fn key_view(t: &ApiToken, login: &str) -> ApiKeyView {
        ApiKeyView {
            id: t.id,
            name: t.name.clone(),
            user: login.to_string(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            scope: serde_json::from_str(&t.scope).unwrap_or_default(),
        }
    }

    fn check_key_owner(actor: &Actor, login: &str) -> Result<()> {
        if let Actor::User { key: Some(k), .. } = actor {
            return k.may_manage_credentials();
        }
        if actor.is_operator() || actor.login() == Some(login) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only the account itself or a platform operator may manage its API keys".into(),
            ))
        }
    }

    /// Creates an API key acting as `login`, within `scope` (M1); the key is returned once.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        login: &str,
        name: &str,
        scope: &KeyScope,
    ) -> Result<TokenView> {
        let login = validate::login(login)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "key name",
                "use 1 to 64 printable characters",
            ));
        }
        Self::check_key_owner(actor, &login)?;
        let mut tx = self.store.begin_write().await?;
        let user = self.load_user(&mut *tx, &login).await?;
        let scope = self.checked_scope(&mut *tx, &user, scope).await?;
        let token = secret::generate_token("pfk");
        tx.token_insert(
            &NewToken {
                user_id: user.id,
                kind: APIKEY.into(),
                name: name.into(),
                token_hash: secret::token_hash(&token),
                expires_at: None,
                scope: if scope.is_unlimited() {
                    String::new()
                } else {
                    serde_json::to_string(&scope)
                        .map_err(|e| Error::Internal(format!("key scope: {e}")))?
                },
            },
            self.now(),
        )
        .await?;
        self.audit(
            &mut *tx,
            actor,
            None,
            "apikey.create",
            &login,
            json!({"name": name, "scope": scope}),
        )
        .await?;
        tx.commit().await?;
        Ok(TokenView {
            token,
            user: login,
            expires_at: None,
        })
    }

    /// A scope in canonical form, naming only what exists and what the account reaches
    /// (the key could not go further anyway; this tells the user at once).
    async fn checked_scope(
        &self,
        tx: &mut dyn Tx,
        user: &postfach_store::User,
        scope: &KeyScope,
    ) -> Result<KeyScope> {
        let owner = Actor::User {
            id: user.id,
            login: user.login.clone(),
            is_operator: user.is_operator,
            key: None,
        };
        let org = match &scope.org {
            Some(name) => {
                let o = self.load_org(tx, name).await?;
                self.require_org_member(tx, &owner, &o).await?;
                Some(o)
            }
            None => None,
        };
        let mut services = Vec::new();
        for domain in &scope.services {
            let svc = self.load_service(tx, domain).await?;
            if let Some(o) = org.as_ref().filter(|o| o.id != svc.org_id) {
                return Err(Error::invalid(
                    "scope",
                    format!("{} is not a mail service of {}", svc.domain, o.name),
                ));
            }
            self.require_service(tx, &owner, &svc, Need::Use, "use it")
                .await?;
            if !services.contains(&svc.domain) {
                services.push(svc.domain);
            }
        }
        Ok(KeyScope {
            org: org.map(|o| o.name),
            services,
            read_only: scope.read_only,
        })
    }

    pub async fn list_api_keys(&self, actor: &Actor, login: &str) -> Result<Vec<ApiKeyView>> {
        let login = validate::login(login)?;
        Self::check_key_owner(actor, &login)?;
        let mut tx = self.store.begin().await?;
        let user = self.load_user(&mut *tx, &login).await?;
        Ok(tx
            .tokens_of_user(user.id, APIKEY)
            .await?
            .iter()
            .map(|t| Self::key_view(t, &login))
            .collect())
    }

    pub async fn revoke_api_key(&self, actor: &Actor, login: &str, id: i64) -> Result<ApiKeyView> {
        let login = validate::login(login)?;
        Self::check_key_owner(actor, &login)?;
        let mut tx = self.store.begin_write().await?;
        let user = self.load_user(&mut *tx, &login).await?;
        let key = tx
            .tokens_of_user(user.id, APIKEY)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::not_found("API key", format!("{id} of {login}")))?;
        tx.token_delete(key.id).await?;
        self.audit(
            &mut *tx,
            actor,
            None,
            "apikey.revoke",
            &login,
            json!({"name": key.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Self::key_view(&key, &login))
    }
}
