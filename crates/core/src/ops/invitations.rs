//! M1: invitations. An organization's administrator invites a login; the account behind it
//! (made without a password if there was none) joins only when its owner accepts — logged
//! in, or, for an account that has no password yet, with the token mailed to the login.
//! Who may invite with which role is `rules::m1_grants_and_roles`.

use postfach_store::{Invitation, NewUser, Tx};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::model::{Role, UserView, rfc3339};
use crate::ops::users::appointer;
use crate::rules::m1_grants_and_roles as m1;
use crate::{Actor, Directory, secret, validate};

/// An invitation as shown to the administrators of its organization and to the invitee.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationView {
    pub org: String,
    pub login: String,
    pub role: Role,
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
}

impl InvitationView {
    fn of(i: &Invitation) -> Result<Self> {
        Ok(InvitationView {
            org: i.org_name.clone(),
            login: i.login.clone(),
            role: Role::parse(&i.role)?,
            invited_by: i.invited_by.clone(),
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
        })
    }
}

/// An account that was made by an invitation and has not chosen its password yet.
fn has_no_password(password_hash: &str) -> bool {
    password_hash == secret::DUMMY_HASH
}

impl Directory {
    /// Invites `login` into `org` with `role` (administrators and legal representatives; only
    /// a legal representative invites legal representatives). The answer is the same whether
    /// or not the login had an account: an account is made for it without a password, and
    /// the invitation is mailed to the login in both cases. Inviting again renews it.
    pub async fn invite_user(
        &self,
        actor: &Actor,
        login: &str,
        org: &str,
        role: Role,
    ) -> Result<InvitationView> {
        let login = validate::login(login)?;
        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, org).await?;
        let standing = self
            .require_org_admin(&mut *tx, actor, &o, "invite users")
            .await?;
        m1::may_appoint(appointer(standing), role, &o.name)?;
        let now = self.now();
        let user = match tx.user_by_login(&login).await? {
            Some(u) => {
                if let Some(m) = tx.membership_get(o.id, u.id).await? {
                    return Err(Error::Conflict(format!(
                        "{login} is already a member of {} (role {}); use `user role` to change the role",
                        o.name, m.role
                    )));
                }
                u
            }
            None => {
                tx.user_insert(
                    &NewUser {
                        login: login.clone(),
                        password_hash: secret::DUMMY_HASH.into(),
                        is_operator: false,
                    },
                    now,
                )
                .await?
            }
        };
        let token = secret::generate_token("pfi");
        let invitation = tx
            .invitation_upsert(
                o.id,
                user.id,
                role.as_str(),
                &actor.audit_name(),
                &secret::token_hash(&token),
                now,
                now + m1::INVITATION_DAYS * 86_400,
            )
            .await?;
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "user.invite",
            &login,
            json!({"org": o.name, "role": role.as_str()}),
        )
        .await?;
        tx.commit().await?;
        self.mail_invitation(&invitation, &token).await;
        InvitationView::of(&invitation)
    }

    /// The invitation mail: who invited the login into what, and how to accept.
    async fn mail_invitation(&self, i: &Invitation, token: &str) {
        let body = format!(
            "Hello,\r\n\r\n{who} invites {login} into the organization \"{org}\" on {host} as {role}.\r\n\r\n\
             If you have an account there, log in and accept the invitation:\r\n\
             \x20 postfach user accept \"{org}\"   (or the API: POST /api/v1/me/invitations/{org}/accept)\r\n\r\n\
             If this is your first invitation, choose your password with this token (valid for {days} days):\r\n\
             \x20 {token}\r\n\
             \x20 postfach user activate --token {token} --password ...\r\n\
             \x20 (or the API: POST /api/v1/invitations/activate with {{\"token\": ..., \"password\": ...}})\r\n\r\n\
             If you do not know {org}, ignore this message: nothing happens without you.\r\n",
            who = i.invited_by.trim_start_matches("user:"),
            login = i.login,
            org = i.org_name,
            host = self.policy.platform.hostname,
            role = i.role,
            days = m1::INVITATION_DAYS,
        );
        let subject = format!(
            "Invitation to {} on {}",
            i.org_name, self.policy.platform.hostname
        );
        if let Err(e) = self.platform_notice(&i.login, &subject, &body).await {
            tracing::warn!(error = %e, to = %i.login, "the invitation mail could not be queued");
        }
    }

    /// The actor's own pending invitations.
    pub async fn my_invitations(&self, actor: &Actor) -> Result<Vec<InvitationView>> {
        let Actor::User { id, .. } = actor else {
            return Ok(Vec::new());
        };
        let mut tx = self.store.begin().await?;
        tx.invitations_of_user(*id)
            .await?
            .iter()
            .map(InvitationView::of)
            .collect()
    }

    /// The pending invitations of an organization (its administrators).
    pub async fn org_invitations(&self, actor: &Actor, org: &str) -> Result<Vec<InvitationView>> {
        let mut tx = self.store.begin().await?;
        let o = self.load_org(&mut *tx, org).await?;
        self.require_org_admin(&mut *tx, actor, &o, "see invitations")
            .await?;
        tx.invitations_of_org(o.id)
            .await?
            .iter()
            .map(InvitationView::of)
            .collect()
    }

    /// The invitation of the actor into `org`; the same answer whether the organization does
    /// not exist or did not invite them.
    async fn own_invitation(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org: &str,
    ) -> Result<(i64, Invitation)> {
        let none = || Error::not_found("invitation to", org);
        // Joining an organization is the account's own decision, not an API key's.
        if let Some(k) = crate::access::key_of(actor) {
            k.may_manage_credentials()?;
        }
        let Actor::User { id, .. } = actor else {
            return Err(Error::Forbidden(
                "only the invited account itself accepts an invitation".into(),
            ));
        };
        let Ok(name) = validate::org_name(org) else {
            return Err(none());
        };
        let o = tx.org_by_name(&name).await?.ok_or_else(none)?;
        let i = tx.invitation_get(o.id, *id).await?.ok_or_else(none)?;
        Ok((*id, i))
    }

    /// The invited account accepts: it becomes a member with the invitation's role.
    pub async fn accept_invitation(&self, actor: &Actor, org: &str) -> Result<UserView> {
        let mut tx = self.store.begin_write().await?;
        let (user_id, i) = self.own_invitation(&mut *tx, actor, org).await?;
        self.join(&mut *tx, actor, user_id, &i).await?;
        let user = tx
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| Error::not_found("user", &i.login))?;
        let view = self.user_view(&mut *tx, &user, actor).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// The invited account declines (the invitation is gone).
    pub async fn decline_invitation(&self, actor: &Actor, org: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let (_, i) = self.own_invitation(&mut *tx, actor, org).await?;
        tx.invitation_delete(i.id).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(i.org_id),
            "user.decline",
            &i.login,
            json!({"org": i.org_name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// First invitation of a login that had no account: the token from the mail sets the
    /// account's password (strong enough, S1) and accepts. An account that has a password
    /// logs in and accepts instead: the token cannot change a password.
    pub async fn activate_invitation(&self, token: &str, password: &str) -> Result<UserView> {
        let invalid = || {
            Error::Unauthenticated(
                "this invitation is not valid: it was used, renewed or withdrawn".into(),
            )
        };
        let hash = secret::token_hash(token.trim());
        let login = {
            let mut tx = self.store.begin().await?;
            let i = tx.invitation_by_token(&hash).await?.ok_or_else(invalid)?;
            i.login
        };
        let local = login.split('@').next().unwrap_or(&login);
        crate::rules::s1_passwords::strong_enough(password, &self.policy.passwords, Some(local))?;
        let password_hash = secret::hash_password(password).await?;
        let mut tx = self.store.begin_write().await?;
        let i = tx.invitation_by_token(&hash).await?.ok_or_else(invalid)?;
        m1::invitation_open(i.expires_at, self.now())?;
        let user = tx.user_by_id(i.user_id).await?.ok_or_else(invalid)?;
        if !has_no_password(&user.password_hash) {
            return Err(Error::Conflict(format!(
                "{} already has a password: log in and accept the invitation to {} there",
                user.login, i.org_name
            )));
        }
        tx.user_set_password(user.id, &password_hash).await?;
        let actor = Actor::User {
            id: user.id,
            login: user.login.clone(),
            is_operator: user.is_operator,
            key: None,
        };
        self.join(&mut *tx, &actor, user.id, &i).await?;
        let view = self.user_view(&mut *tx, &user, &actor).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn join(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        user_id: i64,
        i: &Invitation,
    ) -> Result<()> {
        m1::invitation_open(i.expires_at, self.now())?;
        tx.membership_upsert(i.org_id, user_id, &i.role, self.now())
            .await?;
        tx.invitation_delete(i.id).await?;
        self.audit(
            tx,
            actor,
            Some(i.org_id),
            "user.join",
            &i.login,
            json!({"org": i.org_name, "role": i.role, "invited_by": i.invited_by}),
        )
        .await
    }
}
