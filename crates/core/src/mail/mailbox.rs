//! The operator's look into mailboxes (`postfach mailbox list|show`), for support and tests.
//! Reading mail is an operator's privilege: organization administrators manage addresses, they
//! do not read their users' mail.

use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Need;
use crate::error::{Error, Result};
use crate::model::rfc3339;
use crate::{Actor, Directory};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    pub folder: String,
    pub uid: i64,
    /// When it arrived (IMAP INTERNALDATE).
    pub received_at: String,
    /// The `Date:` header.
    pub date: Option<String>,
    pub from: String,
    pub subject: String,
    pub size: i64,
    /// IMAP system flags and keywords.
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxView {
    pub name: String,
    pub special_use: String,
    pub messages: i64,
    pub uidvalidity: i64,
    pub uidnext: i64,
}

/// RFC 9051 §2.3.2 system flags, in the order of their bits in `messages.flags`.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

fn flag_names(bits: i64, keywords: &str) -> Vec<String> {
    SYSTEM_FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, f)| f.to_string())
        .chain(keywords.split_whitespace().map(String::from))
        .collect()
}

impl Directory {
    async fn mailbox_of(
        &self,
        address: &str,
        folder: &str,
    ) -> Result<(postfach_store::Address, postfach_store::Mailbox)> {
        let mut tx = self.store.begin().await?;
        let (_, a) = self.load_address(&mut *tx, address).await?;
        let m = tx.mailbox_get(a.id, folder).await?.ok_or_else(|| {
            Error::not_found(
                "folder",
                format!("{folder} of {}@{}", a.local_part, a.domain),
            )
        })?;
        Ok((a, m))
    }

    /// The folders of an address with their message counts.
    pub async fn list_mailboxes(&self, actor: &Actor, address: &str) -> Result<Vec<MailboxView>> {
        actor.require_operator("look into mailboxes")?;
        let mut tx = self.store.begin().await?;
        let (_, a) = self.load_address(&mut *tx, address).await?;
        let mut out = Vec::new();
        for m in tx.mailbox_list(a.id).await? {
            out.push(MailboxView {
                messages: tx.message_list(m.id).await?.len() as i64,
                name: m.name,
                special_use: m.special_use,
                uidvalidity: m.uidvalidity,
                uidnext: m.uidnext,
            });
        }
        Ok(out)
    }

    /// Creates, renames or deletes a folder of an address for its operator or a manager of
    /// its mail service (the CLI; the mailbox's own user does this over IMAP). The rules are
    /// IMAP's (RFC 9051 §6.3.4–6.3.6): superiors are created, INBOX cannot be deleted, a
    /// folder with inferiors keeps its name as `\Noselect`.
    pub async fn change_folder(
        &self,
        actor: &Actor,
        address: &str,
        change: FolderChange<'_>,
    ) -> Result<()> {
        let address_id = {
            let mut tx = self.store.begin().await?;
            let (svc, a) = self.load_address(&mut *tx, address).await?;
            self.require_service(&mut *tx, actor, &svc, Need::Manage, "change folders")
                .await?;
            a.id
        };
        match change {
            FolderChange::Add(name) => self.folder_create(address_id, name, "").await.map(|_| ()),
            FolderChange::Rename(from, to) => self.folder_rename(address_id, from, to).await,
            FolderChange::Delete(name) => self.folder_delete(address_id, name).await,
        }
    }

    /// The messages of one folder, oldest first.
    pub async fn list_messages(
        &self,
        actor: &Actor,
        address: &str,
        folder: &str,
    ) -> Result<Vec<MessageView>> {
        actor.require_operator("look into mailboxes")?;
        let (_, mailbox) = self.mailbox_of(address, folder).await?;
        let mut tx = self.store.begin().await?;
        Ok(tx
            .message_list(mailbox.id)
            .await?
            .into_iter()
            .map(|m| MessageView {
                folder: mailbox.name.clone(),
                uid: m.uid,
                received_at: rfc3339(m.internal_date),
                date: m.sent_at.map(rfc3339),
                from: m.header_from,
                subject: m.subject,
                size: m.size,
                flags: flag_names(m.flags, &m.keywords),
            })
            .collect())
    }

    /// One message, raw (RFC 5322 bytes as stored).
    pub async fn message_raw(
        &self,
        actor: &Actor,
        address: &str,
        folder: &str,
        uid: i64,
    ) -> Result<Vec<u8>> {
        actor.require_operator("look into mailboxes")?;
        let (a, mailbox) = self.mailbox_of(address, folder).await?;
        let m = {
            let mut tx = self.store.begin().await?;
            tx.message_get(mailbox.id, uid).await?.ok_or_else(|| {
                Error::not_found(
                    "message",
                    format!("UID {uid} in {folder} of {}@{}", a.local_part, a.domain),
                )
            })?
        };
        self.message_body(&m.blob_id).await
    }
}

/// What `Directory::change_folder` does.
#[derive(Debug, Clone, Copy)]
pub enum FolderChange<'a> {
    Add(&'a str),
    Rename(&'a str, &'a str),
    Delete(&'a str),
}
