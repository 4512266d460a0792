//! Mailboxes of an address. Every new address gets the special folders of P5, named for the
//! user and flagged with their RFC 6154 SPECIAL-USE attribute.

use postfach_store::{Mailbox, NewMailbox, Tx};

use crate::Directory;
use crate::error::Result;

/// (name, special-use) of the folders every address starts with.
pub const DEFAULT_FOLDERS: &[(&str, &str)] = &[
    ("INBOX", ""),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
    ("Spam", "\\Junk"),
];

/// Name of the highest UIDVALIDITY given out, in `settings` (scope global).
const UIDVALIDITY_MARK: &str = "uidvalidity_given";

impl Directory {
    /// A UIDVALIDITY never used before (RFC 9051 §2.3.1.1: a mailbox deleted and re-created
    /// under the same name must get a new one): the current time, or one more than the
    /// highest ever given out, whichever is larger. The highest is kept in the store
    /// (`settings`, scope global), because the folders that had it may be gone — deleted
    /// a second ago, with their address even. So a folder's (id, UIDVALIDITY) never
    /// comes back, even where SQLite reuses the id; the folder index cache relies on it.
    pub(crate) async fn next_uidvalidity(&self, tx: &mut dyn Tx, address_id: i64) -> Result<i64> {
        let highest = tx
            .mailbox_list(address_id)
            .await?
            .iter()
            .map(|m| m.uidvalidity)
            .max()
            .unwrap_or(0);
        let given: i64 = tx
            .settings_get("global", 0, UIDVALIDITY_MARK)
            .await?
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // UIDVALIDITY is a 32-bit number; the time fits until 2106.
        let next = self
            .now()
            .max(highest + 1)
            .max(given + 1)
            .min(u32::MAX as i64);
        tx.settings_put("global", 0, UIDVALIDITY_MARK, &next.to_string(), self.now())
            .await?;
        Ok(next)
    }

    pub(crate) async fn create_mailbox(
        &self,
        tx: &mut dyn Tx,
        address_id: i64,
        name: &str,
        special_use: &str,
    ) -> Result<Mailbox> {
        let uidvalidity = self.next_uidvalidity(tx, address_id).await?;
        Ok(tx
            .mailbox_insert(
                &NewMailbox {
                    address_id,
                    name: name.into(),
                    special_use: special_use.into(),
                    uidvalidity,
                },
                self.now(),
            )
            .await?)
    }

    pub(crate) async fn create_default_folders(
        &self,
        tx: &mut dyn Tx,
        address_id: i64,
    ) -> Result<()> {
        for (name, special) in DEFAULT_FOLDERS {
            self.create_mailbox(tx, address_id, name, special).await?;
            // Clients that show subscribed folders only must show these.
            tx.subscription_set(address_id, name, true).await?;
        }
        Ok(())
    }

    /// The address's INBOX, created if it is missing (an address must always receive).
    pub(crate) async fn inbox(&self, tx: &mut dyn Tx, address_id: i64) -> Result<Mailbox> {
        match tx.mailbox_get(address_id, "INBOX").await? {
            Some(m) => Ok(m),
            None => self.create_mailbox(tx, address_id, "INBOX", "").await,
        }
    }
}
