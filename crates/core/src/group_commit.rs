//! Group commit of the hot write paths: the spool of an accepted message, its
//! delivery into a mailbox, IMAP flag changes.
//!
//! SQLite has one write lock and `synchronous = FULL` fsyncs the WAL at every COMMIT, so
//! writers that each commit alone are bounded by one fsync per transaction (≈ 0.5–0.8 ms
//! here) and wait for each other. Here the writers of this process *share* a transaction: a
//! writer takes its [`Turn`] (a fair queue), runs its statements after a `SAVEPOINT` of its
//! own — a writer whose work fails is rolled back to it, alone — and passes the open
//! transaction to the next writer in line. The last one in line (or the one that fills the
//! batch) commits: one fsync for everyone in the batch. Nobody's work is visible to other
//! connections before that COMMIT, and nobody is told "done" before it returned, so
//! "acknowledged means durable" holds exactly as with a transaction of one's own. A batch is
//! bounded in writers and in time, so that the write lock is never held long for others
//! (the CLI) and a steady stream of writers still commits regularly.
//!
//! On PostgreSQL writers run side by side under row locks and the server already flushes
//! concurrent commits together; there a turn is simply a transaction of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use postfach_store::{Backend, Store, Tx};
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::error::{Error, Result};

/// Writers in one batch at most.
const MAX_JOBS: usize = 64;
/// A batch commits once it is this old, even with writers still in line.
const MAX_AGE: Duration = Duration::from_millis(25);

pub(crate) struct GroupCommit {
    store: Arc<dyn Store>,
    open: Mutex<Option<Batch>>,
    /// Writers waiting for their turn (not counting the one that has it).
    waiting: AtomicUsize,
    /// COMMITs made (for tests: fewer than writers means grouping happened).
    pub(crate) commits: Arc<AtomicUsize>,
}

/// The transaction being shared, and how its COMMIT turned out (`None` while open).
struct Batch {
    tx: Box<dyn Tx>,
    jobs: usize,
    started: Instant,
    outcome: watch::Sender<Option<bool>>,
}

impl GroupCommit {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        GroupCommit {
            store,
            open: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            commits: Arc::default(),
        }
    }

    /// Waits for this writer's turn and opens its part of the shared transaction.
    pub(crate) async fn turn(&self) -> Result<Turn<'_>> {
        if self.store.backend() != Backend::Sqlite {
            return Ok(Turn {
                group: self,
                state: State::Own(Some(self.store.begin_write().await?)),
            });
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        if open.is_none() {
            *open = Some(Batch {
                tx: self.store.begin_write().await?,
                jobs: 0,
                started: Instant::now(),
                outcome: watch::channel(None).0,
            });
        }
        let mut turn = Turn {
            group: self,
            state: State::Shared(Some(open)),
        };
        // Until `finish`, dropping the turn (an error, a cancelled task) abandons the batch.
        turn.tx().savepoint().await?;
        Ok(turn)
    }
}

pub(crate) struct Turn<'a> {
    group: &'a GroupCommit,
    state: State<'a>,
}

enum State<'a> {
    /// The shared transaction, held while this writer works in it.
    Shared(Option<MutexGuard<'a, Option<Batch>>>),
    /// A transaction of its own (PostgreSQL).
    Own(Option<Box<dyn Tx>>),
}

impl Turn<'_> {
    /// The transaction to work in.
    pub(crate) fn tx(&mut self) -> &mut dyn Tx {
        match &mut self.state {
            State::Shared(Some(open)) => match open.as_mut() {
                Some(batch) => &mut *batch.tx,
                None => unreachable!("a turn always has its batch"),
            },
            State::Own(Some(tx)) => &mut **tx,
            _ => unreachable!("a finished turn is not used"),
        }
    }

    /// Ends this writer's part: on `Ok` it is kept and the call returns once it is committed
    /// (durable); on `Err` it is undone and the error returned at once.
    pub(crate) async fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        let group = self.group;
        let mut open = match &mut self.state {
            State::Own(tx) => {
                let tx = tx.take().expect("finish runs once");
                let value = result?;
                tx.commit().await?;
                group.commits.fetch_add(1, Ordering::Relaxed);
                return Ok(value);
            }
            State::Shared(open) => open.take().expect("finish runs once"),
        };
        let Some(batch) = open.as_mut() else {
            unreachable!("a turn always has its batch");
        };
        // A job that succeeded keeps its savepoint (COMMIT releases them all).
        let ended = match &result {
            Ok(_) => Ok(()),
            Err(_) => batch.tx.rollback_to_savepoint().await,
        };
        if let Err(e) = ended {
            // The transaction is in an unknown state: nobody in this batch gets "done".
            abandon(&mut open);
            return Err(e.into());
        }
        let value = match result {
            Ok(value) => value,
            Err(e) => {
                // Undone; the others' work goes on in the same transaction.
                pass_or_commit(group, open);
                return Err(e);
            }
        };
        let mut outcome = batch.outcome.subscribe();
        pass_or_commit(group, open);
        match outcome.wait_for(Option::is_some).await.map(|o| *o) {
            Ok(Some(true)) => Ok(value),
            _ => Err(Error::Internal(
                "the transaction this change was part of did not commit".into(),
            )),
        }
    }
}

/// After a writer's part: commits when nobody is waiting or the batch is full or old, else
/// leaves the transaction open for the next writer in line.
fn pass_or_commit(group: &GroupCommit, mut open: MutexGuard<'_, Option<Batch>>) {
    let Some(batch) = open.as_mut() else { return };
    batch.jobs += 1;
    let last = group.waiting.load(Ordering::SeqCst) == 0;
    if !(last || batch.jobs >= MAX_JOBS || batch.started.elapsed() >= MAX_AGE) {
        return;
    }
    let Some(batch) = open.take() else { return };
    drop(open);
    let commits = group.commits.clone();
    // In a task of its own: a writer that is cancelled while waiting must not cancel the
    // COMMIT the others wait for. The next batch begins meanwhile and waits for SQLite's
    // write lock, which this transaction holds until COMMIT has returned.
    tokio::spawn(async move {
        let committed = batch.tx.commit().await;
        commits.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = batch.jobs, "a group commit failed");
        }
        batch.outcome.send_replace(Some(committed.is_ok()));
    });
}

/// Drops the open transaction (rolled back) and tells its writers it failed.
fn abandon(open: &mut MutexGuard<'_, Option<Batch>>) {
    if let Some(batch) = open.take() {
        batch.outcome.send_replace(Some(false));
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Dropped before `finish`: this writer's statements may be half done inside the
        // shared transaction, which therefore cannot be committed.
        if let State::Shared(Some(open)) = &mut self.state {
            abandon(open);
        }
    }
}

#[cfg(test)]
mod tests {
    postfach_store::on_both!(
        concurrent_writers_share_commits,
        a_failed_writer_is_undone_alone,
        an_abandoned_turn_fails_its_batch_only,
    );

    mod scenarios {
        use std::sync::Arc;

        use postfach_store::testing::TestStore;
        use postfach_store::{Backend, Store};

        use super::super::GroupCommit;
        use crate::error::{Error, Result};

        async fn put(group: &GroupCommit, name: &str, fail: bool) -> Result<()> {
            let mut turn = group.turn().await?;
            let result = async {
                turn.tx().settings_put("global", 0, name, "v", 1).await?;
                if fail {
                    return Err(Error::Conflict(format!("{name} refused")));
                }
                Ok(())
            }
            .await;
            turn.finish(result).await
        }

        async fn present(store: &Arc<dyn Store>, name: &str) -> bool {
            let mut tx = store.begin().await.unwrap();
            tx.settings_get("global", 0, name).await.unwrap().is_some()
        }

        /// Every writer's change is committed before it is told so, and on SQLite the
        /// writers that queued up meanwhile share COMMITs.
        pub async fn concurrent_writers_share_commits(t: &TestStore) {
            let group = Arc::new(GroupCommit::new(t.store.clone()));
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let group = group.clone();
                    tokio::spawn(async move { put(&group, &format!("w{i}"), false).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            for i in 0..40 {
                assert!(present(&t.store, &format!("w{i}")).await, "w{i} missing");
            }
            let commits = group.commits.load(std::sync::atomic::Ordering::SeqCst);
            if t.store.backend() == Backend::Sqlite {
                assert!(
                    commits < 40,
                    "{commits} COMMITs for 40 writers: no grouping"
                );
            }
            assert!(commits >= 1);
        }

        /// A writer whose work fails gets its error; its statements are undone, the others'
        /// in the same transaction are kept.
        pub async fn a_failed_writer_is_undone_alone(t: &TestStore) {
            let group = Arc::new(GroupCommit::new(t.store.clone()));
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let group = group.clone();
                    tokio::spawn(async move { put(&group, &format!("f{i}"), i % 3 == 1).await })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                let result = task.await.unwrap();
                if i % 3 == 1 {
                    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
                    assert!(!present(&t.store, &format!("f{i}")).await, "f{i} kept");
                } else {
                    result.unwrap();
                    assert!(present(&t.store, &format!("f{i}")).await, "f{i} missing");
                }
            }
        }

        /// A turn dropped half-way (its task cancelled) cannot be committed: the writers of
        /// its batch are told their change failed and none of it is visible; later writers
        /// are unaffected.
        pub async fn an_abandoned_turn_fails_its_batch_only(t: &TestStore) {
            let group = Arc::new(GroupCommit::new(t.store.clone()));
            // The test holds a turn while "a1" and then "a2" line up behind it (on the
            // single-threaded test runtime each spawned task runs up to its wait).
            let mut first_turn = group.turn().await.unwrap();
            let first = {
                let group = group.clone();
                tokio::spawn(async move { put(&group, "a1", false).await })
            };
            tokio::task::yield_now().await;
            first_turn
                .tx()
                .settings_put("global", 0, "a0", "v", 1)
                .await
                .unwrap();
            let late = {
                let group = group.clone();
                tokio::spawn(async move {
                    // Behind "a1", which therefore passes the transaction on instead of
                    // committing it; this writer then abandons it half-way.
                    let mut turn = group.turn().await.unwrap();
                    turn.tx()
                        .settings_put("global", 0, "a2", "v", 1)
                        .await
                        .unwrap();
                    drop(turn);
                })
            };
            tokio::task::yield_now().await;
            // Abandoned half-way too: "a0" is never committed.
            drop(first_turn);
            let a1 = first.await.unwrap();
            late.await.unwrap();
            if t.store.backend() == Backend::Sqlite {
                // Shared with an abandoned writer: not committed, and a1 is told so.
                assert!(a1.is_err(), "a1 reported done in an abandoned batch");
                assert!(!present(&t.store, "a1").await);
            } else {
                // Own transactions: a1 is independent of the others.
                a1.unwrap();
                assert!(present(&t.store, "a1").await);
            }
            assert!(!present(&t.store, "a0").await);
            assert!(!present(&t.store, "a2").await);
            put(&group, "a3", false).await.unwrap();
            assert!(present(&t.store, "a3").await);
        }
    }
}
