//! The SQL implementation of [`Store`] and [`Tx`], compiled once per driver: `super` (either
//! `sqlite.rs` or `postgres.rs`) provides `Db`, `BACKEND`, `BEGIN_WRITE` and `LOCK_SERVICE`.
//! Everything here must be valid in both dialects: `$N` placeholders, `RETURNING`, 64-bit
//! integers, `CAST(… AS BIGINT)` for aggregates (PostgreSQL's `SUM(bigint)` is `numeric`).

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Pool, Transaction};

use super::{BACKEND, BEGIN_WRITE, Db, LOCK_SERVICE};
use crate::{
    Address, Alias, ApiToken, AuditEntry, AuditFilter, Backend, Delivered, DeliveryLog, DkimKey,
    Domain, Grant, InlineBodies, Invitation, MailService, Mailbox, MailboxStats, Membership,
    Message, NewAddress, NewAudit, NewMailbox, NewMessage, NewQueueEntry, NewQueueRcpt, NewService,
    NewToken, NewUser, Org, QueueEntry, QueueRcpt, Report, Result, Store, StoreError, TokenCount,
    Tx, Usage, User,
};

pub struct SqlStore {
    pool: Pool<Db>,
    /// Writers of this process queue here before they take the database's write lock (SQLite
    /// only, see `super::WRITERS_QUEUE`).
    writers: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Reads on the calling thread (SQLite only, `super::super::in_place`).
    in_place: Option<super::super::in_place::Readers>,
}

impl SqlStore {
    pub(crate) fn new(pool: Pool<Db>, in_place: Option<super::super::in_place::Readers>) -> Self {
        Self {
            pool,
            in_place,
            writers: super::WRITERS_QUEUE
                .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1))),
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(SqlTx {
            savepoint_pending: false,
            tx: Conn::Tx(self.pool.begin().await?),
            _turn: None,
        }))
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(SqlTx {
            savepoint_pending: false,
            tx: Conn::Plain(self.pool.acquire().await?),
            _turn: None,
        }))
    }

    async fn begin_write(&self) -> Result<Box<dyn Tx>> {
        let turn = match &self.writers {
            Some(queue) => Some(
                queue
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?,
            ),
            None => None,
        };
        Ok(Box::new(SqlTx {
            savepoint_pending: false,
            tx: Conn::Tx(self.pool.begin_with(BEGIN_WRITE).await?),
            _turn: turn,
        }))
    }

    fn inline_blobs_now(&self, ids: &[&str]) -> Option<Result<InlineBodies>> {
        Some(self.in_place.as_ref()?.inline_blobs(ids))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

struct SqlTx {
    tx: Conn,
    /// SQLite: [`Tx::savepoint`] was asked for and not yet sent; it goes with the next
    /// statement (see [`SqlTx::savepoint_prefix`]).
    savepoint_pending: bool,
    /// This process's writer turn (SQLite), held until the transaction ends: dropped after
    /// `tx` (field order), i.e. after COMMIT or ROLLBACK has returned.
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

macro_rules! invitation_select {
    () => {
        "SELECT i.id, i.org_id, o.name AS org_name, i.user_id, u.login, i.role, i.invited_by, \
         i.created_at, i.expires_at FROM invitations i JOIN orgs o ON o.id = i.org_id \
         JOIN users u ON u.id = i.user_id"
    };
}

macro_rules! domain_columns {
    () => {
        "id, org_id, name, created_at, verified_at, verify_token"
    };
}

macro_rules! service_select {
    () => {
        "SELECT s.id, s.org_id, o.name AS org_name, s.domain_id, d.name AS domain, s.name, s.tags, \
         s.offer, s.address_quota, s.new_address_limit, s.maintenance, s.created_at \
         FROM mail_services s JOIN domains d ON d.id = s.domain_id JOIN orgs o ON o.id = s.org_id"
    };
}

macro_rules! address_select {
    () => {
        "SELECT a.id, a.service_id, d.name AS domain, a.local_part, a.password_hash, \
         a.storage_quota_bytes, a.storage_used_bytes, a.forward_keep_copy, a.may_change_password, \
         a.may_change_autoresponder, a.may_change_folders, a.created_at, a.last_login_at \
         FROM addresses a JOIN mail_services s ON s.id = a.service_id \
         JOIN domains d ON d.id = s.domain_id"
    };
}

macro_rules! alias_select {
    () => {
        "SELECT l.id, l.service_id, d.name AS domain, l.local_part, l.address_id, \
         a.local_part AS target_local_part, l.created_at \
         FROM aliases l JOIN addresses a ON a.id = l.address_id \
         JOIN mail_services s ON s.id = l.service_id JOIN domains d ON d.id = s.domain_id"
    };
}

macro_rules! membership_select {
    () => {
        "SELECT m.org_id, o.name AS org_name, m.user_id, u.login, m.role, m.created_at \
         FROM memberships m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id"
    };
}

macro_rules! user_select {
    () => {
        "SELECT id, login, password_hash, is_operator, created_at, last_login_at FROM users"
    };
}

macro_rules! token_select {
    () => {
        "SELECT id, user_id, kind, name, token_hash, created_at, expires_at, last_used_at, scope \
         FROM api_tokens"
    };
}

macro_rules! mailbox_select {
    () => {
        "SELECT id, address_id, name, special_use, subscribed, uidvalidity, uidnext, \
         highestmodseq, created_at, recent_uid, noselect FROM mailboxes"
    };
}

/// The columns of a [`Message`], for SELECT and RETURNING alike.
macro_rules! message_columns {
    () => {
        "id, mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq, \
         header_from, subject, sent_at, message_id, sent_day"
    };
}

macro_rules! message_select {
    () => {
        concat!("SELECT ", message_columns!(), " FROM messages")
    };
}

macro_rules! queue_select {
    () => {
        "SELECT id, blob_id, size, mail_from, source, sender_address_id, env_id, ret_full, \
         received_at, expires_at, next_attempt_at, attempts FROM queue"
    };
}

impl SqlTx {
    /// A new MODSEQ for a mailbox (and the row lock that serialises its writers).
    async fn next_modseq(&mut self, mailbox_id: i64) -> Result<i64> {
        sqlx::query_scalar(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 \
             RETURNING highestmodseq",
        )
        .bind(mailbox_id)
        .fetch_optional(self.conn().await?)
        .await?
        .ok_or(StoreError::NotFound)
    }
}

/// A transaction, or a bare connection whose statements each run on their own
/// ([`Store::begin_read`]).
enum Conn {
    Tx(Transaction<'static, Db>),
    Plain(sqlx::pool::PoolConnection<Db>),
}

impl SqlTx {
    /// The connection, for a statement of its own: a savepoint still pending is opened first.
    async fn conn(&mut self) -> Result<&mut <Db as sqlx::Database>::Connection> {
        if std::mem::take(&mut self.savepoint_pending) {
            sqlx::query("SAVEPOINT job")
                .execute(self.raw_conn())
                .await?;
        }
        Ok(self.raw_conn())
    }

    /// The connection as it is, for a statement that opens a pending savepoint itself
    /// ([`SqlTx::savepoint_prefix`]).
    fn raw_conn(&mut self) -> &mut <Db as sqlx::Database>::Connection {
        match &mut self.tx {
            Conn::Tx(tx) => tx,
            Conn::Plain(c) => c,
        }
    }

    /// SQLite: `"SAVEPOINT job; "` when this writer's savepoint is still pending, to be put in
    /// front of the writer's first query string, which then opens it in the same round trip
    /// (performance: inside the group commit every round trip keeps the writers behind waiting).
    /// Taken as opened from here on, even if the statements fail: then rolling back to it
    /// fails too and the batch is abandoned, the safe way.
    fn savepoint_prefix(&mut self) -> &'static str {
        if std::mem::take(&mut self.savepoint_pending) {
            "SAVEPOINT job; "
        } else {
            ""
        }
    }

    /// SQLite: the MODSEQ and the flag changes of up to [`FLAG_CHANGES_PER_CALL`] messages
    /// in one query string, i.e. one round trip to the database thread instead of one per
    /// statement (SQLite binds `$N` to the N-th argument in every statement of the string).
    async fn messages_set_flags_batched(
        &mut self,
        mailbox_id: i64,
        changes: &[(i64, i64, String)],
    ) -> Result<i64> {
        let mut modseq = None;
        for (n, chunk) in changes.chunks(FLAG_CHANGES_PER_CALL).enumerate() {
            // The first call takes the new MODSEQ; later ones reuse it.
            let mut sql = if n == 0 {
                "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1;".to_string()
            } else {
                String::new()
            };
            for i in 0..chunk.len() {
                let p = 2 + 3 * i;
                sql.push_str(&format!(
                    "UPDATE messages SET flags = ${}, keywords = ${}, modseq = \
                     (SELECT highestmodseq FROM mailboxes WHERE id = $1) \
                     WHERE mailbox_id = $1 AND uid = ${};",
                    p,
                    p + 1,
                    p + 2
                ));
            }
            sql.push_str("SELECT highestmodseq FROM mailboxes WHERE id = $1");
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).bind(mailbox_id);
            for (uid, flags, keywords) in chunk {
                q = q.bind(*flags).bind(keywords.as_str()).bind(*uid);
            }
            modseq = q.fetch_all(self.conn().await?).await?.into_iter().next();
            if modseq.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        modseq.ok_or(StoreError::NotFound)
    }
}

/// Flag changes per query string on SQLite (three arguments each, far below its limit).
const FLAG_CHANGES_PER_CALL: usize = 200;

/// `UPDATE`/`DELETE` of one row by id: anything but exactly one row means it vanished.
/// Values per statement when a list is bound as placeholders (both backends allow far more).
const CHUNK: usize = 400;

/// `$first, $first+1, …` (`n` of them).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_row(result: <Db as sqlx::Database>::QueryResult) -> Result<()> {
    match result.rows_affected() {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        match self.tx {
            Conn::Tx(tx) => tx.commit().await?,
            // Each statement committed on its own.
            Conn::Plain(_) => {}
        }
        Ok(())
    }

    // Same statements in both dialects (SQLite lang_savepoint, PostgreSQL SAVEPOINT).
    async fn savepoint(&mut self) -> Result<()> {
        if BACKEND == Backend::Sqlite {
            // Sent with the next statement: one round trip less per writer.
            self.savepoint_pending = true;
            return Ok(());
        }
        sqlx::query("SAVEPOINT job")
            .execute(self.conn().await?)
            .await?;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        if std::mem::take(&mut self.savepoint_pending) {
            // Never opened: nothing was written since.
            return Ok(());
        }
        // To the innermost savepoint of that name (SQLite lang_savepoint, PostgreSQL
        // ROLLBACK TO SAVEPOINT), which stays in place.
        sqlx::query("ROLLBACK TO SAVEPOINT job")
            .execute(self.conn().await?)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- organizations

    async fn org_insert(&mut self, name: &str, now: i64) -> Result<Org> {
        Ok(sqlx::query_as(
            "INSERT INTO orgs (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn org_by_name(&mut self, name: &str) -> Result<Option<Org>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE name = $1")
                .bind(name)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn org_by_id(&mut self, id: i64) -> Result<Option<Org>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE id = $1")
                .bind(id)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn org_list(&mut self) -> Result<Vec<Org>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM orgs ORDER BY name")
                .fetch_all(self.conn().await?)
                .await?,
        )
    }

    // ---------------------------------------------------------------- users

    async fn user_insert(&mut self, user: &NewUser, now: i64) -> Result<User> {
        Ok(sqlx::query_as(
            "INSERT INTO users (login, password_hash, is_operator, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, login, password_hash, is_operator, created_at, last_login_at",
        )
        .bind(&user.login)
        .bind(&user.password_hash)
        .bind(user.is_operator)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn user_by_login(&mut self, login: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(concat!(user_select!(), " WHERE login = $1"))
            .bind(login)
            .fetch_optional(self.conn().await?)
            .await?)
    }

    async fn user_by_id(&mut self, id: i64) -> Result<Option<User>> {
        Ok(sqlx::query_as(concat!(user_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?)
    }

    async fn user_set_password(&mut self, user_id: i64, password_hash: &str) -> Result<()> {
        one_row(
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn user_touch_login(&mut self, user_id: i64, now: i64) -> Result<()> {
        one_row(
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(now)
                .bind(user_id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn operator_logins(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT login FROM users WHERE is_operator ORDER BY id")
                .fetch_all(self.conn().await?)
                .await?,
        )
    }

    async fn operator_count(&mut self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_operator = TRUE")
                .fetch_one(self.conn().await?)
                .await?,
        )
    }

    async fn membership_upsert(
        &mut self,
        org_id: i64,
        user_id: i64,
        role: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn membership_get(&mut self, org_id: i64, user_id: i64) -> Result<Option<Membership>> {
        Ok(sqlx::query_as(concat!(
            membership_select!(),
            " WHERE m.org_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn memberships_of_user(&mut self, user_id: i64) -> Result<Vec<Membership>> {
        Ok(sqlx::query_as(concat!(
            membership_select!(),
            " WHERE m.user_id = $1 ORDER BY o.name"
        ))
        .bind(user_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn memberships_of_org(&mut self, org_id: i64) -> Result<Vec<Membership>> {
        Ok(sqlx::query_as(concat!(
            membership_select!(),
            " WHERE m.org_id = $1 ORDER BY u.login"
        ))
        .bind(org_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- grants

    async fn grant_set(
        &mut self,
        user_id: i64,
        service_id: i64,
        level: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO grants (user_id, service_id, level, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, service_id) DO UPDATE SET level = excluded.level",
        )
        .bind(user_id)
        .bind(service_id)
        .bind(level)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn grant_delete(&mut self, user_id: i64, service_id: i64) -> Result<bool> {
        let r = sqlx::query("DELETE FROM grants WHERE user_id = $1 AND service_id = $2")
            .bind(user_id)
            .bind(service_id)
            .execute(self.conn().await?)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn grant_get(&mut self, user_id: i64, service_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT level FROM grants WHERE user_id = $1 AND service_id = $2")
                .bind(user_id)
                .bind(service_id)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn grants_of_user(&mut self, user_id: i64) -> Result<Vec<Grant>> {
        Ok(sqlx::query_as(
            "SELECT g.user_id, g.service_id, d.name AS domain, g.level, g.created_at FROM grants g \
             JOIN mail_services s ON s.id = g.service_id JOIN domains d ON d.id = s.domain_id \
             WHERE g.user_id = $1 ORDER BY d.name",
        )
        .bind(user_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- domains

    async fn invitation_upsert(
        &mut self,
        org_id: i64,
        user_id: i64,
        role: &str,
        invited_by: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Invitation> {
        sqlx::query(
            "INSERT INTO invitations (org_id, user_id, role, invited_by, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, \
             invited_by = excluded.invited_by, token_hash = excluded.token_hash, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role)
        .bind(invited_by)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(self.conn().await?)
        .await?;
        self.invitation_get(org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn invitation_by_token(&mut self, token_hash: &str) -> Result<Option<Invitation>> {
        Ok(
            sqlx::query_as(concat!(invitation_select!(), " WHERE i.token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn invitation_get(&mut self, org_id: i64, user_id: i64) -> Result<Option<Invitation>> {
        Ok(sqlx::query_as(concat!(
            invitation_select!(),
            " WHERE i.org_id = $1 AND i.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn invitations_of_user(&mut self, user_id: i64) -> Result<Vec<Invitation>> {
        Ok(sqlx::query_as(concat!(
            invitation_select!(),
            " WHERE i.user_id = $1 ORDER BY o.name"
        ))
        .bind(user_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn invitations_of_org(&mut self, org_id: i64) -> Result<Vec<Invitation>> {
        Ok(sqlx::query_as(concat!(
            invitation_select!(),
            " WHERE i.org_id = $1 ORDER BY u.login"
        ))
        .bind(org_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn invitation_delete(&mut self, id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM invitations WHERE id = $1")
            .bind(id)
            .execute(self.conn().await?)
            .await?
            .rows_affected()
            > 0)
    }

    async fn domain_insert(
        &mut self,
        org_id: i64,
        name: &str,
        now: i64,
        verified_at: Option<i64>,
        verify_token: &str,
    ) -> Result<Domain> {
        Ok(sqlx::query_as(concat!(
            "INSERT INTO domains (org_id, name, created_at, verified_at, verify_token) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            domain_columns!()
        ))
        .bind(org_id)
        .bind(name)
        .bind(now)
        .bind(verified_at)
        .bind(verify_token)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn domain_set_verified(&mut self, id: i64, at: i64) -> Result<()> {
        one_row(
            sqlx::query("UPDATE domains SET verified_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn domain_delete(&mut self, id: i64) -> Result<()> {
        one_row(
            sqlx::query("DELETE FROM domains WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn domain_by_name(&mut self, name: &str) -> Result<Option<Domain>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn domain_list(&mut self, org_id: Option<i64>) -> Result<Vec<Domain>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE ($1 IS NULL OR org_id = $1) ORDER BY name"
        ))
        .bind(org_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- mail services

    async fn service_insert(&mut self, s: &NewService, now: i64) -> Result<MailService> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mail_services (org_id, domain_id, name, tags, offer, address_quota, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(s.org_id)
        .bind(s.domain_id)
        .bind(&s.name)
        .bind(&s.tags)
        .bind(&s.offer)
        .bind(s.address_quota)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?;
        self.service_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    async fn service_by_domain(&mut self, domain: &str) -> Result<Option<MailService>> {
        Ok(
            sqlx::query_as(concat!(service_select!(), " WHERE d.name = $1"))
                .bind(domain)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn service_by_id(&mut self, id: i64) -> Result<Option<MailService>> {
        Ok(
            sqlx::query_as(concat!(service_select!(), " WHERE s.id = $1"))
                .bind(id)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn service_list(&mut self, org_id: Option<i64>) -> Result<Vec<MailService>> {
        Ok(sqlx::query_as(concat!(
            service_select!(),
            " WHERE ($1 IS NULL OR s.org_id = $1) ORDER BY d.name"
        ))
        .bind(org_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn service_update(&mut self, s: &MailService) -> Result<()> {
        one_row(
            sqlx::query(
                "UPDATE mail_services SET name = $1, tags = $2, offer = $3, address_quota = $4, \
                 new_address_limit = $5, maintenance = $6 WHERE id = $7",
            )
            .bind(&s.name)
            .bind(&s.tags)
            .bind(&s.offer)
            .bind(s.address_quota)
            .bind(s.new_address_limit)
            .bind(s.maintenance)
            .bind(s.id)
            .execute(self.conn().await?)
            .await?,
        )
    }

    async fn lock_service(&mut self, id: i64) -> Result<()> {
        sqlx::query(LOCK_SERVICE)
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    // ---------------------------------------------------------------- addresses

    async fn address_insert(&mut self, a: &NewAddress, now: i64) -> Result<Address> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO addresses (service_id, local_part, password_hash, storage_quota_bytes, \
             forward_keep_copy, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(a.service_id)
        .bind(&a.local_part)
        .bind(&a.password_hash)
        .bind(a.storage_quota_bytes)
        .bind(a.forward_keep_copy)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?;
        self.address_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    async fn address_get(&mut self, service_id: i64, local_part: &str) -> Result<Option<Address>> {
        Ok(sqlx::query_as(concat!(
            address_select!(),
            " WHERE a.service_id = $1 AND a.local_part = $2"
        ))
        .bind(service_id)
        .bind(local_part)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn address_by_id(&mut self, id: i64) -> Result<Option<Address>> {
        Ok(
            sqlx::query_as(concat!(address_select!(), " WHERE a.id = $1"))
                .bind(id)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn address_list(&mut self, service_id: i64) -> Result<Vec<Address>> {
        Ok(sqlx::query_as(concat!(
            address_select!(),
            " WHERE a.service_id = $1 ORDER BY a.local_part"
        ))
        .bind(service_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn address_count(&mut self, service_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM addresses WHERE service_id = $1")
                .bind(service_id)
                .fetch_one(self.conn().await?)
                .await?,
        )
    }

    async fn address_update(&mut self, a: &Address) -> Result<()> {
        one_row(
            sqlx::query(
                "UPDATE addresses SET storage_quota_bytes = $1, forward_keep_copy = $2, \
                 may_change_password = $3, may_change_autoresponder = $4, may_change_folders = $5, \
                 last_login_at = $6 WHERE id = $7",
            )
            .bind(a.storage_quota_bytes)
            .bind(a.forward_keep_copy)
            .bind(a.may_change_password)
            .bind(a.may_change_autoresponder)
            .bind(a.may_change_folders)
            .bind(a.last_login_at)
            .bind(a.id)
            .execute(self.conn().await?)
            .await?,
        )
    }

    async fn address_set_password(&mut self, id: i64, password_hash: &str) -> Result<()> {
        one_row(
            sqlx::query("UPDATE addresses SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn address_delete(&mut self, id: i64) -> Result<()> {
        // Settings documents and Bayes stores are keyed by scope, not by a foreign key.
        for sql in [
            "DELETE FROM settings WHERE scope = 'address' AND scope_id = $1",
            "DELETE FROM bayes_tokens WHERE scope_id = $1",
            "DELETE FROM bayes_totals WHERE scope_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(self.conn().await?)
                .await?;
        }
        one_row(
            sqlx::query("DELETE FROM addresses WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn forwards_get(&mut self, address_id: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT target FROM forwards WHERE address_id = $1 ORDER BY target")
                .bind(address_id)
                .fetch_all(self.conn().await?)
                .await?,
        )
    }

    async fn forwards_set(&mut self, address_id: i64, targets: &[String]) -> Result<()> {
        sqlx::query("DELETE FROM forwards WHERE address_id = $1")
            .bind(address_id)
            .execute(self.conn().await?)
            .await?;
        for target in targets {
            sqlx::query("INSERT INTO forwards (address_id, target) VALUES ($1, $2)")
                .bind(address_id)
                .bind(target)
                .execute(self.conn().await?)
                .await?;
        }
        Ok(())
    }

    async fn creation_log_insert(
        &mut self,
        service_id: i64,
        local_part: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO address_creations (service_id, local_part, created_at) VALUES ($1, $2, $3)",
        )
        .bind(service_id)
        .bind(local_part)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn creations_since(&mut self, service_id: i64, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM address_creations WHERE service_id = $1 AND created_at > $2",
        )
        .bind(service_id)
        .bind(since)
        .fetch_one(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- aliases

    async fn alias_insert(
        &mut self,
        service_id: i64,
        local_part: &str,
        address_id: i64,
        now: i64,
    ) -> Result<Alias> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO aliases (service_id, local_part, address_id, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(service_id)
        .bind(local_part)
        .bind(address_id)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?;
        sqlx::query_as(concat!(alias_select!(), " WHERE l.id = $1"))
            .bind(id)
            .fetch_one(self.conn().await?)
            .await
            .map_err(Into::into)
    }

    async fn alias_get(&mut self, service_id: i64, local_part: &str) -> Result<Option<Alias>> {
        Ok(sqlx::query_as(concat!(
            alias_select!(),
            " WHERE l.service_id = $1 AND l.local_part = $2"
        ))
        .bind(service_id)
        .bind(local_part)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn alias_list(&mut self, service_id: i64) -> Result<Vec<Alias>> {
        Ok(sqlx::query_as(concat!(
            alias_select!(),
            " WHERE l.service_id = $1 ORDER BY l.local_part"
        ))
        .bind(service_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn alias_delete(&mut self, id: i64) -> Result<()> {
        one_row(
            sqlx::query("DELETE FROM aliases WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    // ---------------------------------------------------------------- audit log

    async fn audit_insert(&mut self, e: &NewAudit, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, org_id, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now)
        .bind(&e.actor)
        .bind(e.org_id)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.detail)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn audit_list(&mut self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, org_id, action, target, detail FROM audit_log \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR actor = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(f.org_id)
        .bind(f.actor.as_deref())
        .bind(f.before_id)
        .bind(f.limit)
        .fetch_all(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- API credentials

    async fn token_insert(&mut self, t: &NewToken, now: i64) -> Result<ApiToken> {
        Ok(sqlx::query_as(
            "INSERT INTO api_tokens (user_id, kind, name, token_hash, created_at, expires_at, scope) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, user_id, kind, name, token_hash, created_at, expires_at, last_used_at, scope",
        )
        .bind(t.user_id)
        .bind(&t.kind)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(now)
        .bind(t.expires_at)
        .bind(&t.scope)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn token_by_hash(&mut self, token_hash: &str) -> Result<Option<ApiToken>> {
        Ok(
            sqlx::query_as(concat!(token_select!(), " WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(self.conn().await?)
                .await?,
        )
    }

    async fn token_touch(&mut self, id: i64, now: i64) -> Result<()> {
        one_row(
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn token_delete(&mut self, id: i64) -> Result<()> {
        one_row(
            sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn tokens_of_user(&mut self, user_id: i64, kind: &str) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as(concat!(
            token_select!(),
            " WHERE user_id = $1 AND kind = $2 ORDER BY id"
        ))
        .bind(user_id)
        .bind(kind)
        .fetch_all(self.conn().await?)
        .await?)
    }

    // ---------------------------------------------------------------- mailboxes, messages

    async fn mailbox_insert(&mut self, m: &NewMailbox, now: i64) -> Result<Mailbox> {
        Ok(sqlx::query_as(
            "INSERT INTO mailboxes (address_id, name, special_use, uidvalidity, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, address_id, name, special_use, \
             subscribed, uidvalidity, uidnext, highestmodseq, created_at, recent_uid, noselect",
        )
        .bind(m.address_id)
        .bind(&m.name)
        .bind(&m.special_use)
        .bind(m.uidvalidity)
        .bind(now)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn mailbox_get(&mut self, address_id: i64, name: &str) -> Result<Option<Mailbox>> {
        Ok(sqlx::query_as(concat!(
            mailbox_select!(),
            " WHERE address_id = $1 AND name = $2"
        ))
        .bind(address_id)
        .bind(name)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn mailbox_by_id(&mut self, id: i64) -> Result<Option<Mailbox>> {
        Ok(sqlx::query_as(concat!(mailbox_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?)
    }

    async fn mailbox_list(&mut self, address_id: i64) -> Result<Vec<Mailbox>> {
        Ok(sqlx::query_as(concat!(
            mailbox_select!(),
            " WHERE address_id = $1 ORDER BY name"
        ))
        .bind(address_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn message_append(&mut self, mailbox_id: i64, m: &NewMessage) -> Result<Message> {
        // One statement takes the UID and the MODSEQ and locks the mailbox row, so concurrent
        // appends to one mailbox get distinct, increasing UIDs (RFC 9051 §2.3.1.1).
        let (uid, modseq): (i64, i64) = sqlx::query_as(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
        )
        .bind(mailbox_id)
        .fetch_optional(self.conn().await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, keywords, \
             modseq, header_from, subject, sent_at, message_id, sent_day) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            message_columns!()
        ))
        .bind(mailbox_id)
        .bind(uid)
        .bind(&m.blob_id)
        .bind(m.size)
        .bind(m.internal_date)
        .bind(m.flags)
        .bind(&m.keywords)
        .bind(modseq)
        .bind(&m.header_from)
        .bind(&m.subject)
        .bind(m.sent_at)
        .bind(&m.message_id)
        .bind(m.sent_day)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn message_deliver(
        &mut self,
        mailbox_id: i64,
        m: &NewMessage,
        address_id: i64,
        inline: Option<&[u8]>,
    ) -> Result<Delivered> {
        if BACKEND != Backend::Sqlite {
            // The usage first: its row lock makes concurrent appends of the address wait
            // for each other, so each sees the usage the one before it left.
            let usage = self.address_add_usage(address_id, m.size).await?;
            if let Some(data) = inline {
                self.inline_blob_put(&m.blob_id, data).await?;
            }
            let message = self.message_append(mailbox_id, m).await?;
            return Ok(Delivered { message, usage });
        }
        // SQLite runs the statements of one query string in order, binding `$N` to the N-th
        // argument in each: the INSERT reads the UID and MODSEQ the UPDATE just took (the
        // write lock is ours, so nobody else can take them in between). Only the INSERT
        // returns a row, with the usage as it will be once the last statement has counted
        // the message; no row means the mailbox does not exist. What the other statements
        // wrote then is undone by the caller's error (its savepoint).
        macro_rules! deliver_sql {
            ($prefix:literal) => {
                concat!(
                    $prefix,
                    "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
                     WHERE id = $1; \
                     INSERT INTO inline_blobs (id, data) SELECT $2, $12 WHERE $12 IS NOT NULL \
                     ON CONFLICT (id) DO NOTHING; \
                     INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, keywords, \
                     modseq, header_from, subject, sent_at, message_id, sent_day) \
                     SELECT id, uidnext - 1, $2, $3, $4, $5, $6, highestmodseq, $7, $8, $9, $10, $13 \
                     FROM mailboxes WHERE id = $1 RETURNING ",
                    message_columns!(),
                    ", (SELECT storage_used_bytes + $3 FROM addresses WHERE id = $11) AS used, \
                     (SELECT storage_quota_bytes FROM addresses WHERE id = $11) AS quota; \
                     UPDATE addresses SET storage_used_bytes = storage_used_bytes + $3 WHERE id = $11"
                )
            };
        }
        // With this writer's savepoint in front when it is still pending: one round trip.
        let sql = if self.savepoint_prefix().is_empty() {
            deliver_sql!("")
        } else {
            deliver_sql!("SAVEPOINT job; ")
        };
        let stored: Vec<Delivered> = sqlx::query_as(sql)
            .bind(mailbox_id)
            .bind(&m.blob_id)
            .bind(m.size)
            .bind(m.internal_date)
            .bind(m.flags)
            .bind(&m.keywords)
            .bind(&m.header_from)
            .bind(&m.subject)
            .bind(m.sent_at)
            .bind(&m.message_id)
            .bind(address_id)
            .bind(inline)
            .bind(m.sent_day)
            .fetch_all(self.raw_conn())
            .await?;
        Ok(stored.into_iter().next().ok_or(StoreError::NotFound)?)
    }

    async fn message_get(&mut self, mailbox_id: i64, uid: i64) -> Result<Option<Message>> {
        Ok(sqlx::query_as(concat!(
            message_select!(),
            " WHERE mailbox_id = $1 AND uid = $2"
        ))
        .bind(mailbox_id)
        .bind(uid)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn message_list(&mut self, mailbox_id: i64) -> Result<Vec<Message>> {
        Ok(sqlx::query_as(concat!(
            message_select!(),
            " WHERE mailbox_id = $1 ORDER BY uid"
        ))
        .bind(mailbox_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn address_add_usage(&mut self, address_id: i64, delta: i64) -> Result<Usage> {
        sqlx::query_as(
            "UPDATE addresses SET storage_used_bytes = storage_used_bytes + $1 WHERE id = $2 \
             RETURNING storage_used_bytes AS used, storage_quota_bytes AS quota",
        )
        .bind(delta)
        .bind(address_id)
        .fetch_optional(self.conn().await?)
        .await?
        .ok_or(StoreError::NotFound)
    }

    async fn settings_get(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM settings WHERE scope = $1 AND scope_id = $2 AND name = $3",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(name)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn settings_all(
        &mut self,
        scopes: &[(&str, i64)],
    ) -> Result<Vec<(String, i64, String, String)>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT scope, scope_id, name, value FROM settings WHERE {} ORDER BY name",
            (0..scopes.len())
                .map(|i| format!("(scope = ${} AND scope_id = ${})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let mut q = sqlx::query_as(AssertSqlSafe(sql));
        for (scope, id) in scopes {
            q = q.bind(*scope).bind(*id);
        }
        Ok(q.fetch_all(self.conn().await?).await?)
    }

    async fn services_in_maintenance(&mut self) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM mail_services WHERE maintenance")
                .fetch_all(self.conn().await?)
                .await?,
        )
    }

    async fn settings_put_new(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO settings (scope, scope_id, name, value, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, scope_id, name) DO NOTHING",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn settings_put(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (scope, scope_id, name, value, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scope, scope_id, name) DO UPDATE SET value = $4, updated_at = $5",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn settings_delete(&mut self, scope: &str, scope_id: i64, name: &str) -> Result<bool> {
        let r =
            sqlx::query("DELETE FROM settings WHERE scope = $1 AND scope_id = $2 AND name = $3")
                .bind(scope)
                .bind(scope_id)
                .bind(name)
                .execute(self.conn().await?)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn autoreply_sent_get(&mut self, address_id: i64, sender: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT sent_at FROM autoreply_sent WHERE address_id = $1 AND sender = $2",
        )
        .bind(address_id)
        .bind(sender)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn autoreply_sent_put(&mut self, address_id: i64, sender: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO autoreply_sent (address_id, sender, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (address_id, sender) DO UPDATE SET sent_at = $3",
        )
        .bind(address_id)
        .bind(sender)
        .bind(at)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn autoreply_sent_clear(&mut self, address_id: i64, prefix: &str) -> Result<i64> {
        // Matched here rather than with LIKE, whose wildcards and case rules differ between
        // the backends and which an address may contain.
        let senders: Vec<String> =
            sqlx::query_scalar("SELECT sender FROM autoreply_sent WHERE address_id = $1")
                .bind(address_id)
                .fetch_all(self.conn().await?)
                .await?;
        let mut n = 0;
        for sender in senders.iter().filter(|s| s.starts_with(prefix)) {
            sqlx::query("DELETE FROM autoreply_sent WHERE address_id = $1 AND sender = $2")
                .bind(address_id)
                .bind(sender)
                .execute(self.conn().await?)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    async fn delivery_log_insert(
        &mut self,
        address_id: i64,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO delivery_log (address_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(address_id)
        .bind(now)
        .bind(kind)
        .bind(detail)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn delivery_log_list(&mut self, address_id: i64, limit: i64) -> Result<Vec<DeliveryLog>> {
        Ok(sqlx::query_as(
            "SELECT id, address_id, at, kind, detail FROM delivery_log WHERE address_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(address_id)
        .bind(limit)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn bayes_counts(&mut self, scope_id: i64, tokens: &[i64]) -> Result<Vec<TokenCount>> {
        let mut out = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(CHUNK) {
            // Only numbered placeholders are spliced into the text; every value is bound.
            let sql = format!(
                "SELECT token, spam, ham FROM bayes_tokens WHERE scope_id = $1 AND token IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, TokenCount>(AssertSqlSafe(sql)).bind(scope_id);
            for t in chunk {
                q = q.bind(t);
            }
            out.extend(q.fetch_all(self.conn().await?).await?);
        }
        Ok(out)
    }

    async fn bayes_totals(&mut self, scope_ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        if scope_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT scope_id, spam, ham FROM bayes_totals WHERE scope_id IN ({})",
            placeholders(1, scope_ids.len())
        );
        let mut q = sqlx::query_as::<_, (i64, i64, i64)>(AssertSqlSafe(sql));
        for id in scope_ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(self.conn().await?).await?;
        Ok(scope_ids
            .iter()
            .map(|id| {
                rows.iter()
                    .find(|r| r.0 == *id)
                    .map_or((0, 0), |r| (r.1, r.2))
            })
            .collect())
    }

    async fn bayes_learn(
        &mut self,
        scope_id: i64,
        tokens: &[i64],
        spam: i64,
        ham: i64,
    ) -> Result<()> {
        // PostgreSQL refuses an upsert that touches one row twice: each token once.
        let mut tokens = tokens.to_vec();
        tokens.sort_unstable();
        tokens.dedup();
        for chunk in tokens.chunks(CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${}, $2, $3)", i + 4))
                .collect();
            let sql = format!(
                "INSERT INTO bayes_tokens (scope_id, token, spam, ham) VALUES {} \
                 ON CONFLICT (scope_id, token) DO UPDATE SET \
                 spam = bayes_tokens.spam + excluded.spam, ham = bayes_tokens.ham + excluded.ham",
                rows.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(scope_id)
                .bind(spam)
                .bind(ham);
            for t in chunk {
                q = q.bind(t);
            }
            q.execute(self.conn().await?).await?;
            if spam < 0 || ham < 0 {
                // Un-training: tokens no message counts any more are forgotten.
                let sql = format!(
                    "DELETE FROM bayes_tokens WHERE scope_id = $1 AND spam <= 0 AND ham <= 0 \
                     AND token IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(scope_id);
                for t in chunk {
                    q = q.bind(t);
                }
                q.execute(self.conn().await?).await?;
            }
        }
        sqlx::query(
            "INSERT INTO bayes_totals (scope_id, spam, ham) VALUES ($1, $2, $3) \
             ON CONFLICT (scope_id) DO UPDATE SET \
             spam = bayes_totals.spam + excluded.spam, ham = bayes_totals.ham + excluded.ham",
        )
        .bind(scope_id)
        .bind(spam)
        .bind(ham)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn bayes_trained_get(
        &mut self,
        address_id: i64,
        msg_key: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT class FROM bayes_trained WHERE address_id = $1 AND msg_key = $2",
        )
        .bind(address_id)
        .bind(msg_key)
        .fetch_optional(self.conn().await?)
        .await?)
    }

    async fn bayes_trained_put(
        &mut self,
        address_id: i64,
        msg_key: &str,
        class: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO bayes_trained (address_id, msg_key, class, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (address_id, msg_key) DO UPDATE SET class = $3, at = $4",
        )
        .bind(address_id)
        .bind(msg_key)
        .bind(class)
        .bind(at)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn report_insert(&mut self, r: &Report) -> Result<Report> {
        Ok(sqlx::query_as(
            "INSERT INTO reports (org_id, address, kind, mail_from, subject, message_id, headers, \
             reported_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id, org_id, address, kind, mail_from, subject, message_id, headers, \
             reported_by, at",
        )
        .bind(r.org_id)
        .bind(&r.address)
        .bind(&r.kind)
        .bind(&r.mail_from)
        .bind(&r.subject)
        .bind(&r.message_id)
        .bind(&r.headers)
        .bind(&r.reported_by)
        .bind(r.at)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn report_list(
        &mut self,
        org_id: Option<i64>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Report>> {
        Ok(sqlx::query_as(
            "SELECT id, org_id, address, kind, mail_from, subject, message_id, headers, \
             reported_by, at FROM reports \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR kind = $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(org_id)
        .bind(kind)
        .bind(limit)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn mailbox_lock(&mut self, mailbox_id: i64) -> Result<()> {
        // An UPDATE that changes nothing still takes the row lock (PostgreSQL). SQLite's
        // write transaction is exclusive already: no round trip to its thread (performance: inside
        // the group commit every statement keeps the writers behind waiting).
        if BACKEND == Backend::Sqlite {
            return Ok(());
        }
        one_row(
            sqlx::query("UPDATE mailboxes SET highestmodseq = highestmodseq WHERE id = $1")
                .bind(mailbox_id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn address_lock(&mut self, address_id: i64) -> Result<()> {
        if BACKEND == Backend::Sqlite {
            return Ok(());
        }
        // NO KEY UPDATE: serialises the writers of one address but not the inserts that
        // refer to it (their foreign-key checks take KEY SHARE; FOR UPDATE would deadlock
        // two spools that each inserted a queue entry first). An UPDATE of the row, as the
        // usage count does, takes the same lock.
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT id FROM addresses WHERE id = $1 FOR NO KEY UPDATE")
                .bind(address_id)
                .fetch_optional(self.conn().await?)
                .await?;
        locked.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn mailbox_rename(&mut self, id: i64, name: &str) -> Result<()> {
        one_row(
            sqlx::query("UPDATE mailboxes SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn mailbox_delete(&mut self, id: i64) -> Result<()> {
        one_row(
            sqlx::query("DELETE FROM mailboxes WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn subscription_set(&mut self, address_id: i64, name: &str, on: bool) -> Result<()> {
        let sql = if on {
            "INSERT INTO subscriptions (address_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM subscriptions WHERE address_id = $1 AND name = $2"
        };
        sqlx::query(sql)
            .bind(address_id)
            .bind(name)
            .execute(self.conn().await?)
            .await?;
        Ok(())
    }

    async fn subscriptions(&mut self, address_id: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT name FROM subscriptions WHERE address_id = $1 ORDER BY name",
            )
            .bind(address_id)
            .fetch_all(self.conn().await?)
            .await?,
        )
    }

    async fn mailbox_set_subscribed(&mut self, id: i64, subscribed: bool) -> Result<()> {
        one_row(
            sqlx::query("UPDATE mailboxes SET subscribed = $1 WHERE id = $2")
                .bind(subscribed)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn mailbox_set_noselect(
        &mut self,
        id: i64,
        noselect: bool,
        uidvalidity: i64,
    ) -> Result<()> {
        one_row(
            sqlx::query(
                "UPDATE mailboxes SET noselect = $1, uidvalidity = $2, special_use = '' WHERE id = $3",
            )
            .bind(noselect)
            .bind(uidvalidity)
            .bind(id)
            .execute(self.conn().await?)
            .await?,
        )
    }

    async fn mailbox_set_special_use(&mut self, id: i64, special_use: &str) -> Result<()> {
        one_row(
            sqlx::query("UPDATE mailboxes SET special_use = $1 WHERE id = $2")
                .bind(special_use)
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn mailbox_claim_recent(&mut self, id: i64, upto: i64) -> Result<i64> {
        if BACKEND == Backend::Sqlite {
            // The write transaction is exclusive: read and advance in one query string, one
            // round trip to the database thread (performance: APPEND claims in the shared
            // transaction). `fetch_all`, so that the UPDATE after the SELECT runs too.
            let before: Vec<i64> = sqlx::query_scalar(
                "SELECT recent_uid FROM mailboxes WHERE id = $1; \
                 UPDATE mailboxes SET recent_uid = $2 WHERE id = $1 AND recent_uid < $2",
            )
            .bind(id)
            .bind(upto)
            .fetch_all(self.conn().await?)
            .await?;
            return before.into_iter().next().ok_or(StoreError::NotFound);
        }
        // Read and advance under the row lock the UPDATE takes.
        let before: i64 = sqlx::query_scalar(
            "UPDATE mailboxes SET recent_uid = recent_uid WHERE id = $1 RETURNING recent_uid",
        )
        .bind(id)
        .fetch_optional(self.conn().await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        if upto > before {
            sqlx::query("UPDATE mailboxes SET recent_uid = $1 WHERE id = $2")
                .bind(upto)
                .bind(id)
                .execute(self.conn().await?)
                .await?;
        }
        Ok(before)
    }

    async fn mailbox_stats(&mut self, id: i64) -> Result<MailboxStats> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*) AS messages, \
             CAST(COALESCE(SUM(CASE WHEN flags % 2 = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS unseen, \
             CAST(COALESCE(SUM(size), 0) AS BIGINT) AS size FROM messages WHERE mailbox_id = $1",
        )
        .bind(id)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn messages_changed_since(
        &mut self,
        mailbox_id: i64,
        modseq: i64,
    ) -> Result<Vec<Message>> {
        Ok(sqlx::query_as(concat!(
            message_select!(),
            " WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid"
        ))
        .bind(mailbox_id)
        .bind(modseq)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn expunged_since(&mut self, mailbox_id: i64, modseq: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
        )
        .bind(mailbox_id)
        .bind(modseq)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn messages_set_flags_if_current(
        &mut self,
        mailbox_id: i64,
        writes: &[(i64, i64, String, i64)],
        unchanged: &[(i64, i64)],
    ) -> Result<Option<i64>> {
        if BACKEND != Backend::Sqlite || writes.len() + unchanged.len() > FLAG_CHANGES_PER_CALL {
            return Ok(None);
        }
        // One query string (SQLite binds `$N` to the N-th argument in every statement): the
        // new MODSEQ, each write guarded by the MODSEQ the caller saw, then one row telling
        // the MODSEQ, how many messages carry it (exactly the ones written: it is new) and
        // how many of `unchanged` are still as seen.
        let mut sql = String::from(self.savepoint_prefix());
        if !writes.is_empty() {
            sql.push_str("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1;");
        }
        let mut p = 2;
        for _ in writes {
            sql.push_str(&format!(
                "UPDATE messages SET flags = ${}, keywords = ${}, modseq = \
                 (SELECT highestmodseq FROM mailboxes WHERE id = $1) \
                 WHERE mailbox_id = $1 AND uid = ${} AND modseq = ${};",
                p,
                p + 1,
                p + 2,
                p + 3
            ));
            p += 4;
        }
        let seen = if unchanged.is_empty() {
            "0".to_string()
        } else {
            let each: Vec<String> = (0..unchanged.len())
                .map(|i| format!("(uid = ${} AND modseq = ${})", p + 2 * i, p + 2 * i + 1))
                .collect();
            format!(
                "(SELECT COUNT(*) FROM messages WHERE mailbox_id = $1 AND ({}))",
                each.join(" OR ")
            )
        };
        sql.push_str(&format!(
            "SELECT highestmodseq, (SELECT COUNT(*) FROM messages WHERE mailbox_id = $1 \
             AND modseq = m.highestmodseq), {seen} FROM mailboxes m WHERE id = $1"
        ));
        let mut q = sqlx::query_as::<_, (i64, i64, i64)>(AssertSqlSafe(sql)).bind(mailbox_id);
        for (uid, flags, keywords, modseq) in writes {
            q = q
                .bind(*flags)
                .bind(keywords.as_str())
                .bind(*uid)
                .bind(*modseq);
        }
        for (uid, modseq) in unchanged {
            q = q.bind(*uid).bind(*modseq);
        }
        let Some((modseq, written, still)) = q.fetch_all(self.raw_conn()).await?.into_iter().next()
        else {
            return Err(StoreError::NotFound);
        };
        let as_seen = (writes.is_empty() || written == writes.len() as i64)
            && still == unchanged.len() as i64;
        Ok(as_seen.then_some(if writes.is_empty() { 0 } else { modseq }))
    }

    async fn messages_set_flags(
        &mut self,
        mailbox_id: i64,
        changes: &[(i64, i64, String)],
    ) -> Result<i64> {
        if BACKEND == Backend::Sqlite && !changes.is_empty() {
            return self.messages_set_flags_batched(mailbox_id, changes).await;
        }
        let modseq = self.next_modseq(mailbox_id).await?;
        for (uid, flags, keywords) in changes {
            sqlx::query(
                "UPDATE messages SET flags = $1, keywords = $2, modseq = $3 \
                 WHERE mailbox_id = $4 AND uid = $5",
            )
            .bind(flags)
            .bind(keywords)
            .bind(modseq)
            .bind(mailbox_id)
            .bind(uid)
            .execute(self.conn().await?)
            .await?;
        }
        Ok(modseq)
    }

    async fn messages_delete(&mut self, mailbox_id: i64, uids: &[i64]) -> Result<i64> {
        let modseq = self.next_modseq(mailbox_id).await?;
        for uid in uids {
            let gone = sqlx::query("DELETE FROM messages WHERE mailbox_id = $1 AND uid = $2")
                .bind(mailbox_id)
                .bind(uid)
                .execute(self.conn().await?)
                .await?;
            if gone.rows_affected() == 1 {
                sqlx::query("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES ($1, $2, $3)")
                    .bind(mailbox_id)
                    .bind(uid)
                    .bind(modseq)
                    .execute(self.conn().await?)
                    .await?;
            }
        }
        Ok(modseq)
    }

    // ---------------------------------------------------------------- queue

    async fn queue_insert(
        &mut self,
        q: &NewQueueEntry,
        rcpts: &[NewQueueRcpt],
        now: i64,
    ) -> Result<i64> {
        Ok(self.queue_insert_returning(q, rcpts, now, None).await?.0.id)
    }

    async fn queue_insert_returning(
        &mut self,
        q: &NewQueueEntry,
        rcpts: &[NewQueueRcpt],
        now: i64,
        claim: Option<(i64, &str)>,
    ) -> Result<(QueueEntry, Vec<QueueRcpt>)> {
        let entry: QueueEntry = sqlx::query_as(
            "INSERT INTO queue (blob_id, size, mail_from, source, sender_address_id, env_id, \
             ret_full, received_at, expires_at, next_attempt_at, lease_until, leased_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, $11) \
             RETURNING id, blob_id, size, mail_from, source, sender_address_id, env_id, \
             ret_full, received_at, expires_at, next_attempt_at, attempts",
        )
        .bind(&q.blob_id)
        .bind(q.size)
        .bind(&q.mail_from)
        .bind(&q.source)
        .bind(q.sender_address_id)
        .bind(q.env_id.as_deref())
        .bind(q.ret_full)
        .bind(now)
        .bind(q.expires_at)
        .bind(claim.map(|c| c.0))
        .bind(claim.map(|c| c.1))
        .fetch_one(self.conn().await?)
        .await?;
        let mut out = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            out.push(
                sqlx::query_as(
                    "INSERT INTO queue_rcpts (queue_id, rcpt, address_id, via, domain, is_local, \
                     notify, orcpt, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id, queue_id, rcpt, address_id, via, domain, is_local, status, \
                     notify, orcpt, last_error, updated_at",
                )
                .bind(entry.id)
                .bind(&r.rcpt)
                .bind(r.address_id)
                .bind(&r.via)
                .bind(&r.domain)
                .bind(r.is_local)
                .bind(r.notify)
                .bind(r.orcpt.as_deref())
                .bind(now)
                .fetch_one(self.conn().await?)
                .await?,
            );
        }
        Ok((entry, out))
    }

    async fn queue_get(&mut self, id: i64) -> Result<Option<QueueEntry>> {
        Ok(sqlx::query_as(concat!(queue_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?)
    }

    async fn queue_list(&mut self) -> Result<Vec<QueueEntry>> {
        Ok(sqlx::query_as(concat!(queue_select!(), " ORDER BY id"))
            .fetch_all(self.conn().await?)
            .await?)
    }

    async fn queue_due(&mut self, now: i64, limit: i64) -> Result<Vec<QueueEntry>> {
        Ok(sqlx::query_as(concat!(
            queue_select!(),
            " WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn queue_claim(
        &mut self,
        id: i64,
        now: i64,
        lease_until: i64,
        node: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE queue SET lease_until = $1, leased_by = $2 WHERE id = $3 \
             AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until <= $4)",
        )
        .bind(lease_until)
        .bind(node)
        .bind(id)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn queue_release_node(&mut self, node: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE queue SET lease_until = NULL, leased_by = NULL WHERE leased_by = $1",
        )
        .bind(node)
        .execute(self.conn().await?)
        .await?;
        Ok(r.rows_affected())
    }

    async fn queue_schedule(&mut self, id: i64, next_attempt_at: i64, attempts: i64) -> Result<()> {
        one_row(
            sqlx::query(
                "UPDATE queue SET next_attempt_at = $1, attempts = $2, lease_until = NULL, \
                 leased_by = NULL WHERE id = $3",
            )
            .bind(next_attempt_at)
            .bind(attempts)
            .bind(id)
            .execute(self.conn().await?)
            .await?,
        )
    }

    async fn queue_delete(&mut self, id: i64) -> Result<()> {
        one_row(
            sqlx::query("DELETE FROM queue WHERE id = $1")
                .bind(id)
                .execute(self.conn().await?)
                .await?,
        )
    }

    async fn queue_rcpts(&mut self, queue_id: i64) -> Result<Vec<QueueRcpt>> {
        Ok(sqlx::query_as(
            "SELECT id, queue_id, rcpt, address_id, via, domain, is_local, status, notify, orcpt, \
             last_error, updated_at FROM queue_rcpts WHERE queue_id = $1 ORDER BY id",
        )
        .bind(queue_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn queue_rcpt_set(
        &mut self,
        id: i64,
        status: &str,
        last_error: &str,
        now: i64,
    ) -> Result<()> {
        one_row(
            sqlx::query(
                "UPDATE queue_rcpts SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(status)
            .bind(last_error)
            .bind(now)
            .bind(id)
            .execute(self.conn().await?)
            .await?,
        )
    }

    async fn blob_referenced(&mut self, blob_id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE blob_id = $1) \
             OR EXISTS (SELECT 1 FROM queue WHERE blob_id = $1)",
        )
        .bind(blob_id)
        .fetch_one(self.conn().await?)
        .await?)
    }

    async fn inline_blob_put(&mut self, id: &str, data: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO inline_blobs (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(data)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn inline_blobs_get(&mut self, ids: &[&str]) -> Result<InlineBodies> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, data FROM inline_blobs WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, Vec<u8>)>(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            out.extend(q.fetch_all(self.conn().await?).await?);
        }
        Ok(out)
    }

    async fn inline_blob_delete_unused(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM inline_blobs WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = $1)",
        )
        .bind(id)
        .execute(self.conn().await?)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    // ---------------------------------------------------------------- DKIM, sending log

    async fn dkim_insert(&mut self, k: &DkimKey, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(k.domain_id)
        .bind(&k.selector)
        .bind(&k.algorithm)
        .bind(&k.private_key)
        .bind(&k.public_key)
        .bind(now)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    async fn dkim_keys(&mut self, domain_id: i64) -> Result<Vec<DkimKey>> {
        Ok(sqlx::query_as(
            "SELECT id, domain_id, selector, algorithm, private_key, public_key, created_at \
             FROM dkim_keys WHERE domain_id = $1 ORDER BY id",
        )
        .bind(domain_id)
        .fetch_all(self.conn().await?)
        .await?)
    }

    async fn send_log_add(
        &mut self,
        address_id: i64,
        recipients: i64,
        now: i64,
        since: i64,
    ) -> Result<i64> {
        self.address_lock(address_id).await?;
        sqlx::query("INSERT INTO send_log (address_id, at, recipients) VALUES ($1, $2, $3)")
            .bind(address_id)
            .bind(now)
            .bind(recipients)
            .execute(self.conn().await?)
            .await?;
        self.send_log_sum(address_id, since).await
    }

    async fn send_log_sum(&mut self, address_id: i64, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(recipients), 0) AS BIGINT) FROM send_log \
             WHERE address_id = $1 AND at > $2",
        )
        .bind(address_id)
        .bind(since)
        .fetch_one(self.conn().await?)
        .await?)
    }
}
