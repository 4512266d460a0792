//! Training the Bayesian classifier (F5) from what users do: moving a message into the Spam
//! folder (IMAP MOVE/COPY, the API's "report as spam") trains it as spam, moving it out of
//! Spam into anything but Trash trains it as ham; Thunderbird's `$Junk`/`$NotJunk` keywords
//! count the same. Training is idempotent per message (`bayes_trained`): a second move into
//! Spam changes nothing, a move back out first takes the spam vote back.

use postfach_store::{Message, Tx};

use crate::Directory;
use crate::error::Result;
use crate::mail::bayes::{self, Evidence, GLOBAL};

/// Messages trained before an IMAP command answers; more are trained in the background.
const TRAIN_INLINE: usize = 100;

/// What a user said a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }

    /// (spam, ham) deltas of one message of this class.
    fn votes(self) -> (i64, i64) {
        match self {
            Class::Spam => (1, 0),
            Class::Ham => (0, 1),
        }
    }

    /// The class a move between folders of these SPECIAL-USE roles says, if any.
    pub fn of_move(from_role: &str, to_role: &str) -> Option<Class> {
        let junk = |r: &str| r.eq_ignore_ascii_case("\\Junk");
        if junk(to_role) && !junk(from_role) {
            Some(Class::Spam)
        } else if junk(from_role) && !junk(to_role) && !to_role.eq_ignore_ascii_case("\\Trash") {
            Some(Class::Ham)
        } else {
            None
        }
    }

    /// The class a keyword set by STORE says (Thunderbird's junk controls), if any.
    pub fn of_keyword(keyword: &str) -> Option<Class> {
        if keyword.eq_ignore_ascii_case("$Junk") {
            Some(Class::Spam)
        } else if keyword.eq_ignore_ascii_case("$NotJunk") {
            Some(Class::Ham)
        } else {
            None
        }
    }
}

/// How much a store has been trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BayesStats {
    /// Messages the address's own store learned as spam / ham.
    pub spam_learned: i64,
    pub ham_learned: i64,
    /// The same for the platform-wide store.
    pub global_spam_learned: i64,
    pub global_ham_learned: i64,
    /// Messages of each class needed before the classifier's verdict counts.
    pub min_learns: i64,
}

impl Directory {
    /// The classifier's evidence for a message to `address_id`: the platform's counts plus
    /// the address's own.
    pub async fn bayes_evidence(&self, address_id: i64, tokens: &[i64]) -> Result<Evidence> {
        let mut tx = self.store.begin_read().await?;
        let mut e = Evidence::default();
        let scopes = [GLOBAL, address_id];
        let totals = tx.bayes_totals(&scopes).await?;
        for t in &totals {
            e.add([], *t);
        }
        // Before enough training there is no verdict, whatever the tokens say: their lookup
        // (a query per few hundred tokens and store) is skipped — the common case on a fresh
        // installation, and for every message until the first users train.
        if !e.ready() {
            return Ok(e);
        }
        let mut e = Evidence::default();
        for (scope, t) in scopes.into_iter().zip(totals) {
            let counts = tx.bayes_counts(scope, tokens).await?;
            e.add(counts.into_iter().map(|c| (c.token, (c.spam, c.ham))), t);
        }
        Ok(e)
    }

    pub async fn bayes_stats(&self, address_id: i64) -> Result<BayesStats> {
        let mut tx = self.store.begin().await?;
        let [own, global] = tx.bayes_totals(&[address_id, GLOBAL]).await?[..] else {
            return Err(crate::Error::Internal("Bayes totals incomplete".into()));
        };
        Ok(BayesStats {
            spam_learned: own.0,
            ham_learned: own.1,
            global_spam_learned: global.0,
            global_ham_learned: global.1,
            min_learns: bayes::MIN_LEARNS,
        })
    }

    /// Trains stored messages (by blob) of `address_id` as `class`. Returns how many changed
    /// the stores (a message already trained as `class` does not).
    pub async fn train(&self, address_id: i64, blobs: &[String], class: Class) -> Result<usize> {
        let mut changed = 0;
        for blob in blobs {
            let raw = self.message_body(blob).await?;
            if self.train_raw(address_id, raw, class).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Trains one message; false if it had been trained as `class` already.
    pub(crate) async fn train_raw(
        &self,
        address_id: i64,
        raw: Vec<u8>,
        class: Class,
    ) -> Result<bool> {
        let (key, tokens) = tokio::task::spawn_blocking(move || bayes::learnable(&raw))
            .await
            .map_err(|e| crate::Error::Internal(format!("tokenizing failed: {e}")))?;
        let mut tx = self.store.begin_write().await?;
        let before = tx.bayes_trained_get(address_id, &key).await?;
        if before.as_deref() == Some(class.as_str()) {
            return Ok(false);
        }
        if let Some(prev) = before {
            let prev = if prev == "spam" {
                Class::Spam
            } else {
                Class::Ham
            };
            learn(&mut *tx, address_id, &tokens, prev, -1).await?;
        }
        learn(&mut *tx, address_id, &tokens, class, 1).await?;
        tx.bayes_trained_put(address_id, &key, class.as_str(), self.now())
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Training after a user's action must never fail that action (the move has happened):
    /// errors are logged.
    ///
    /// Small batches are trained before the command answers (the next delivery already sees
    /// them); a large one (a whole folder dragged into Spam) goes on in the background so
    /// that the client does not time out waiting for it.
    pub(crate) async fn train_quietly(&self, address_id: i64, blobs: Vec<String>, class: Class) {
        if blobs.is_empty() {
            return;
        }
        let inline = blobs.len() <= TRAIN_INLINE;
        let dir = self.clone();
        let work = async move {
            match dir.train(address_id, &blobs, class).await {
                Ok(n) => tracing::info!(address_id, n, class = class.as_str(), "trained"),
                Err(e) => {
                    tracing::warn!(address_id, error = %e, "training the spam filter failed")
                }
            }
        };
        if inline {
            work.await
        } else {
            tokio::spawn(work);
        }
    }

    /// After STORE: messages that just got `$Junk` or `$NotJunk`.
    pub(crate) async fn train_on_keywords(
        &self,
        mailbox_id: i64,
        before: &[Message],
        now: &[Message],
    ) {
        let address_id = {
            let Ok(mut tx) = self.store.begin().await else {
                return;
            };
            match tx.mailbox_by_id(mailbox_id).await {
                Ok(Some(m)) => m.address_id,
                _ => return,
            }
        };
        for class in [Class::Spam, Class::Ham] {
            let has = |m: &Message| {
                m.keywords
                    .split_whitespace()
                    .any(|k| Class::of_keyword(k) == Some(class))
            };
            let blobs: Vec<String> = now
                .iter()
                .filter(|m| has(m) && !before.iter().any(|b| b.uid == m.uid && has(b)))
                .map(|m| m.blob_id.clone())
                .collect();
            self.train_quietly(address_id, blobs, class).await;
        }
    }
}

async fn learn(
    tx: &mut dyn Tx,
    address_id: i64,
    tokens: &[i64],
    class: Class,
    sign: i64,
) -> Result<()> {
    let (s, h) = class.votes();
    for scope in [GLOBAL, address_id] {
        tx.bayes_learn(scope, tokens, s * sign, h * sign).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_keywords_map_to_classes() {
        assert_eq!(Class::of_move("", "\\Junk"), Some(Class::Spam));
        assert_eq!(Class::of_move("\\Sent", "\\Junk"), Some(Class::Spam));
        assert_eq!(Class::of_move("\\Junk", ""), Some(Class::Ham));
        assert_eq!(Class::of_move("\\Junk", "\\Trash"), None);
        assert_eq!(Class::of_move("\\Junk", "\\Junk"), None);
        assert_eq!(Class::of_move("", "\\Archive"), None);
        assert_eq!(Class::of_keyword("$junk"), Some(Class::Spam));
        assert_eq!(Class::of_keyword("$NotJunk"), Some(Class::Ham));
        assert_eq!(Class::of_keyword("$Label1"), None);
    }
}
