//! The store test suite: every scenario runs against SQLite and against the PostgreSQL on
//! 127.0.0.1:5432 (a throw-away database per test, see `postfach_store::testing`).

use postfach_store::testing::TestStore;
use postfach_store::*;

postfach_store::on_both!(
    directory_round_trip,
    uniqueness_is_enforced,
    rollback_discards_writes,
    service_updates_and_listing,
    addresses_aliases_forwards,
    creation_log_counts_window,
    audit_log_filters_and_pages,
    tokens,
    locked_writers_serialise,
    mailboxes_and_messages,
    concurrent_appends_get_distinct_uids,
    queue_lifecycle,
    dkim_and_send_log,
    imap_operations,
    delivery_settings_and_state,
    inline_bodies,
    delivery_append_in_one_call,
    flags_set_if_current,
    first_settings_writer_wins,
);

mod scenarios {
    use super::mail::{address, msg};
    use super::*;

    /// Small spooled bodies kept in the store: content-addressed, verified on
    /// read, removed only when nothing refers to them any more.
    pub async fn inline_bodies(t: &TestStore) {
        let body = b"Subject: hi\r\n\r\nsmall\r\n".to_vec();
        let id = inline_id(&body);
        assert!(is_inline_id(&id) && !is_inline_id(&id[1..]) && BlobId::parse(&id).is_none());
        let mut tx = t.store.begin_write().await.unwrap();
        tx.inline_blob_put(&id, &body).await.unwrap();
        // The same content again is a no-op, not a conflict.
        tx.inline_blob_put(&id, &body).await.unwrap();
        let entry = NewQueueEntry {
            blob_id: id.clone(),
            size: body.len() as i64,
            mail_from: "x@remote.test".into(),
            source: "inbound".into(),
            sender_address_id: None,
            env_id: None,
            ret_full: false,
            expires_at: 1000,
        };
        let (queued, rcpts) = tx
            .queue_insert_returning(&entry, &[], 5, Some((65, "node-a")))
            .await
            .unwrap();
        assert!(rcpts.is_empty());
        assert_eq!(
            (queued.blob_id.as_str(), queued.received_at),
            (id.as_str(), 5)
        );
        tx.commit().await.unwrap();

        let mut tx = t.store.begin_read().await.unwrap();
        let got = tx.inline_blobs_get(&[&id, "i0000"]).await.unwrap();
        assert_eq!(got, vec![(id.clone(), body.clone())]);
        assert_eq!(verify_inline(&id, body.clone()).unwrap(), body);
        let mut bad = body.clone();
        bad[3] ^= 0x20;
        assert!(matches!(
            verify_inline(&id, bad),
            Err(StoreError::Corrupt(_))
        ));
        // Claimed by the insert: not due for anyone else before the lease ends.
        assert!(tx.queue_due(10, 10).await.unwrap().is_empty());
        drop(tx);

        let mut tx = t.store.begin_write().await.unwrap();
        assert!(
            !tx.inline_blob_delete_unused(&id).await.unwrap(),
            "still queued"
        );
        tx.queue_delete(queued.id).await.unwrap();
        assert!(tx.inline_blob_delete_unused(&id).await.unwrap());
        tx.commit().await.unwrap();
        let mut tx = t.store.begin_read().await.unwrap();
        assert!(tx.inline_blobs_get(&[&id]).await.unwrap().is_empty());
    }

    /// `message_deliver` (one round trip on SQLite) does what `message_append`,
    /// `address_add_usage` and `inline_blob_put` do, and reports the usage it left (the
    /// quota rule is decided on it); a missing mailbox is an error that leaves nothing behind
    /// once its savepoint is rolled back.
    pub async fn delivery_append_in_one_call(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let inbox = mail::inbox(&mut *tx, a.id).await;
        let body = b"Subject: one\r\n\r\nfirst\r\n".to_vec();
        let id = inline_id(&body);
        let first = tx
            .message_deliver(inbox.id, &msg(&id, 25), a.id, Some(&body))
            .await
            .unwrap();
        assert_eq!(
            first.usage,
            Usage {
                used: 25,
                quota: 1 << 20
            }
        );
        // A second copy of a body that is stored already, and one kept elsewhere (no data).
        let second = tx
            .message_deliver(inbox.id, &msg(&id, 25), a.id, Some(&body))
            .await
            .unwrap();
        let third = tx
            .message_deliver(inbox.id, &msg("0123abcd", 40), a.id, None)
            .await
            .unwrap();
        assert_eq!(third.usage.used, 90);
        let (first, second, third) = (first.message, second.message, third.message);
        assert_eq!((first.uid, second.uid, third.uid), (1, 2, 3));
        assert!(first.modseq < second.modseq && second.modseq < third.modseq);
        assert_eq!(
            (third.mailbox_id, third.blob_id.as_str(), third.size),
            (inbox.id, "0123abcd", 40)
        );
        assert_eq!(third.subject, "Hello");
        tx.savepoint().await.unwrap();
        assert!(matches!(
            tx.message_deliver(inbox.id + 1000, &msg(&id, 25), a.id, None)
                .await,
            Err(StoreError::NotFound)
        ));
        tx.rollback_to_savepoint().await.unwrap();
        // Past the quota (1 MiB, 90 bytes used) the write happens and says so; the caller
        // that refuses it rolls it back with its savepoint.
        tx.savepoint().await.unwrap();
        let over = tx
            .message_deliver(inbox.id, &msg("0123abce", (1 << 20) - 89), a.id, None)
            .await
            .unwrap();
        assert_eq!(
            over.usage,
            Usage {
                used: (1 << 20) + 1,
                quota: 1 << 20
            }
        );
        tx.rollback_to_savepoint().await.unwrap();
        let usage = tx.address_add_usage(a.id, 0).await.unwrap();
        assert_eq!(usage.used, 90);
        tx.commit().await.unwrap();

        let mut tx = t.store.begin_read().await.unwrap();
        let after = tx.address_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(after.storage_used_bytes, 25 + 25 + 40);
        let mb = tx.mailbox_get(a.id, "INBOX").await.unwrap().unwrap();
        assert_eq!((mb.uidnext, mb.highestmodseq), (4, third.modseq));
        assert_eq!(
            tx.inline_blobs_get(&[&id]).await.unwrap(),
            vec![(id.clone(), body)]
        );
        let listed: Vec<i64> = tx
            .message_list(inbox.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(listed, vec![1, 2, 3]);
    }

    pub async fn delivery_settings_and_state(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        assert_eq!(
            tx.settings_get("address", a.id, "sieve").await.unwrap(),
            None
        );
        tx.settings_put("address", a.id, "sieve", "{\"v\":1}", 10)
            .await
            .unwrap();
        tx.settings_put("address", a.id, "sieve", "{\"v\":2}", 11)
            .await
            .unwrap();
        tx.settings_put("service", a.service_id, "sieve", "{}", 11)
            .await
            .unwrap();
        assert_eq!(
            tx.settings_get("address", a.id, "sieve")
                .await
                .unwrap()
                .as_deref(),
            Some("{\"v\":2}")
        );
        // Two scopes in one read (the delivery path), each row tagged with its scope.
        tx.settings_put("address", a.id, "filters", "{}", 11)
            .await
            .unwrap();
        let both = tx
            .settings_all(&[("address", a.id), ("service", a.service_id)])
            .await
            .unwrap();
        let mut names: Vec<(String, i64, String)> =
            both.into_iter().map(|r| (r.0, r.1, r.2)).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("address".into(), a.id, "filters".into()),
                ("address".into(), a.id, "sieve".into()),
                ("service".into(), a.service_id, "sieve".into()),
            ]
        );
        assert!(tx.settings_all(&[]).await.unwrap().is_empty());
        assert!(
            tx.settings_delete("address", a.id, "filters")
                .await
                .unwrap()
        );
        assert!(
            tx.settings_delete("service", a.service_id, "sieve")
                .await
                .unwrap()
        );
        assert!(
            !tx.settings_delete("service", a.service_id, "sieve")
                .await
                .unwrap()
        );

        tx.autoreply_sent_put(a.id, "auto:x@y.org", 100)
            .await
            .unwrap();
        tx.autoreply_sent_put(a.id, "auto:x@y.org", 200)
            .await
            .unwrap();
        tx.autoreply_sent_put(a.id, "vacation:h:x@y.org", 150)
            .await
            .unwrap();
        assert_eq!(
            tx.autoreply_sent_get(a.id, "auto:x@y.org").await.unwrap(),
            Some(200)
        );
        assert_eq!(tx.autoreply_sent_clear(a.id, "auto:").await.unwrap(), 1);
        assert_eq!(
            tx.autoreply_sent_get(a.id, "auto:x@y.org").await.unwrap(),
            None
        );
        assert!(
            tx.autoreply_sent_get(a.id, "vacation:h:x@y.org")
                .await
                .unwrap()
                .is_some()
        );

        tx.delivery_log_insert(a.id, "sieve_error", "line 3: unknown command", 5)
            .await
            .unwrap();
        tx.delivery_log_insert(a.id, "loop", "stopped", 6)
            .await
            .unwrap();
        let log = tx.delivery_log_list(a.id, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|l| l.kind.as_str()).collect::<Vec<_>>(),
            ["loop", "sieve_error"]
        );

        // Bayes totals of several stores in one read, in the order asked, zero when untrained.
        tx.bayes_learn(a.id, &[11, 12], 1, 0).await.unwrap();
        tx.bayes_learn(a.id, &[11], 0, 1).await.unwrap();
        assert_eq!(
            tx.bayes_totals(&[0, a.id]).await.unwrap(),
            vec![(0, 0), (1, 1)]
        );
        assert_eq!(tx.bayes_totals(&[a.id]).await.unwrap(), vec![(1, 1)]);
        assert!(tx.bayes_totals(&[]).await.unwrap().is_empty());

        // An address takes its settings and state with it.
        tx.address_delete(a.id).await.unwrap();
        assert_eq!(
            tx.settings_get("address", a.id, "sieve").await.unwrap(),
            None
        );
        tx.commit().await.unwrap();
    }

    pub async fn mailboxes_and_messages(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let inbox = mail::inbox(&mut *tx, a.id).await;
        tx.mailbox_insert(
            &NewMailbox {
                address_id: a.id,
                name: "Sent".into(),
                special_use: "\\Sent".into(),
                uidvalidity: 7,
            },
            5,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = t.store.begin_write().await.unwrap();
        assert!(matches!(
            tx.mailbox_insert(
                &NewMailbox {
                    address_id: a.id,
                    name: "INBOX".into(),
                    special_use: "".into(),
                    uidvalidity: 8
                },
                5
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        let inbox2 = tx.mailbox_get(a.id, "INBOX").await.unwrap().unwrap();
        assert_eq!(
            (inbox2.uidnext, inbox2.highestmodseq, inbox2.uidvalidity),
            (1, 1, 7)
        );
        let m1 = tx.message_append(inbox.id, &msg("b1", 10)).await.unwrap();
        let m2 = tx.message_append(inbox.id, &msg("b2", 20)).await.unwrap();
        assert_eq!((m1.uid, m2.uid), (1, 2));
        assert!(m2.modseq > m1.modseq);
        tx.address_add_usage(a.id, 30).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = t.store.begin().await.unwrap();
        let inbox = tx.mailbox_by_id(inbox.id).await.unwrap().unwrap();
        assert_eq!((inbox.uidnext, inbox.highestmodseq), (3, 3));
        assert_eq!(
            tx.message_list(inbox.id).await.unwrap(),
            vec![m1.clone(), m2]
        );
        assert_eq!(tx.message_get(inbox.id, 1).await.unwrap(), Some(m1));
        assert_eq!(
            tx.mailbox_list(a.id)
                .await
                .unwrap()
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["INBOX", "Sent"]
        );
        assert_eq!(
            tx.address_by_id(a.id)
                .await
                .unwrap()
                .unwrap()
                .storage_used_bytes,
            30
        );
        assert!(tx.blob_referenced("b1").await.unwrap());
        assert!(!tx.blob_referenced("nope").await.unwrap());
        assert!(matches!(
            tx.message_append(999_999, &msg("x", 1)).await,
            Err(StoreError::NotFound)
        ));
    }

    /// UIDs are never handed out twice, whatever the concurrency (RFC 9051 §2.3.1.1).
    pub async fn concurrent_appends_get_distinct_uids(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let inbox = tx
            .mailbox_insert(
                &NewMailbox {
                    address_id: a.id,
                    name: "INBOX".into(),
                    special_use: "".into(),
                    uidvalidity: 1,
                },
                5,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = t.store.clone();
            tasks.push(tokio::spawn(async move {
                let mut uids = Vec::new();
                for j in 0..5 {
                    let mut tx = store.begin_write().await.unwrap();
                    let m = tx
                        .message_append(inbox.id, &msg(&format!("b{i}-{j}"), 1))
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    uids.push(m.uid);
                }
                uids
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort();
        assert_eq!(all, (1..=40).collect::<Vec<i64>>());
    }

    pub async fn queue_lifecycle(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let id = tx
            .queue_insert(
                &NewQueueEntry {
                    blob_id: "blob".into(),
                    size: 42,
                    mail_from: "x@remote.test".into(),
                    source: "inbound".into(),
                    sender_address_id: None,
                    env_id: Some("ENV1".into()),
                    ret_full: true,
                    expires_at: 1000,
                },
                &[
                    NewQueueRcpt {
                        rcpt: "info@acme.test".into(),
                        address_id: Some(a.id),
                        via: "address".into(),
                        domain: "acme.test".into(),
                        is_local: true,
                        ..Default::default()
                    },
                    NewQueueRcpt {
                        rcpt: "y@far.test".into(),
                        domain: "far.test".into(),
                        notify: 3,
                        orcpt: Some("rfc822;y@far.test".into()),
                        ..Default::default()
                    },
                ],
                10,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = t.store.begin_write().await.unwrap();
        let q = tx.queue_get(id).await.unwrap().unwrap();
        assert_eq!(
            (
                q.next_attempt_at,
                q.attempts,
                q.env_id.as_deref(),
                q.ret_full
            ),
            (10, 0, Some("ENV1"), true)
        );
        assert_eq!(tx.queue_due(9, 10).await.unwrap().len(), 0);
        assert_eq!(tx.queue_due(10, 10).await.unwrap().len(), 1);
        // Claiming is exclusive: the second claim at the same time fails.
        assert!(tx.queue_claim(id, 10, 70, "node-a").await.unwrap());
        assert!(!tx.queue_claim(id, 10, 70, "node-b").await.unwrap());
        assert!(tx.queue_due(69, 10).await.unwrap().is_empty(), "leased");
        assert_eq!(
            tx.queue_due(70, 10).await.unwrap().len(),
            1,
            "the lease ran out"
        );
        // A restarted node releases its own claims, not others'.
        assert_eq!(tx.queue_release_node("node-b").await.unwrap(), 0);
        assert_eq!(tx.queue_release_node("node-a").await.unwrap(), 1);
        assert_eq!(tx.queue_due(11, 10).await.unwrap().len(), 1, "released");
        assert!(tx.queue_claim(id, 11, 70, "node-b").await.unwrap());
        let rcpts = tx.queue_rcpts(id).await.unwrap();
        assert_eq!(rcpts.len(), 2);
        assert!(rcpts[0].is_local && !rcpts[1].is_local);
        assert_eq!((rcpts[1].notify, rcpts[1].status.as_str()), (3, "pending"));
        tx.queue_rcpt_set(rcpts[0].id, "delivered", "", 11)
            .await
            .unwrap();
        tx.queue_schedule(id, 500, 1).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = t.store.begin_write().await.unwrap();
        assert_eq!(tx.queue_rcpts(id).await.unwrap()[0].status, "delivered");
        assert_eq!(tx.queue_list().await.unwrap()[0].attempts, 1);
        assert!(tx.blob_referenced("blob").await.unwrap());
        tx.queue_delete(id).await.unwrap();
        assert!(
            tx.queue_rcpts(id).await.unwrap().is_empty(),
            "recipients go with the entry"
        );
        assert!(!tx.blob_referenced("blob").await.unwrap());
    }

    /// STORE from a session's view: written only while every message is still at
    /// the MODSEQ the session saw it at; a stale one refuses the whole change, and what the
    /// call wrote goes with the writer's savepoint. PostgreSQL always refuses, writing nothing.
    pub async fn flags_set_if_current(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let inbox = mail::inbox(&mut *tx, a.id).await;
        let mut seen = Vec::new();
        for i in 0..3 {
            let m = tx
                .message_deliver(inbox.id, &msg(&format!("0123abc{i}"), 10), a.id, None)
                .await
                .unwrap()
                .message;
            seen.push((m.uid, m.modseq));
        }
        tx.commit().await.unwrap();
        let flags_of = |list: &[Message]| -> Vec<(i64, i64, String)> {
            list.iter()
                .map(|m| (m.uid, m.flags, m.keywords.clone()))
                .collect()
        };
        let sqlite = t.store.backend() == Backend::Sqlite;

        // As seen: one new MODSEQ carried by exactly the messages written.
        let mut tx = t.store.begin_write().await.unwrap();
        tx.savepoint().await.unwrap();
        let done = tx
            .messages_set_flags_if_current(
                inbox.id,
                &[
                    (1, 1, "".into(), seen[0].1),
                    (2, 4, "$Work".into(), seen[1].1),
                ],
                &[(3, seen[2].1)],
            )
            .await
            .unwrap();
        let listed = tx.message_list(inbox.id).await.unwrap();
        if sqlite {
            let modseq = done.expect("every message as seen");
            assert!(modseq > seen[2].1);
            assert_eq!(
                flags_of(&listed),
                [(1, 1, "".into()), (2, 4, "$Work".into()), (3, 0, "".into())]
            );
            assert_eq!(
                listed.iter().map(|m| m.modseq).collect::<Vec<_>>(),
                [modseq, modseq, seen[2].1]
            );
            let mb = tx.mailbox_by_id(inbox.id).await.unwrap().unwrap();
            assert_eq!(mb.highestmodseq, modseq);
        } else {
            assert_eq!(done, None);
            assert!(listed.iter().all(|m| m.flags == 0), "nothing written");
        }
        tx.commit().await.unwrap();
        let before = t
            .store
            .begin_read()
            .await
            .unwrap()
            .message_list(inbox.id)
            .await
            .unwrap();

        // Stale: message 1 is no longer at the MODSEQ seen (on SQLite it was just changed),
        // and 3 is named with a MODSEQ it never had. Either refuses the whole change.
        for (writes, unchanged) in [
            (
                vec![
                    (1, 0, "".to_string(), seen[0].1),
                    (3, 1, "".into(), seen[2].1),
                ],
                vec![],
            ),
            (
                vec![(1, 8, "".to_string(), before[0].modseq)],
                vec![(3, seen[2].1 + 100)],
            ),
            (vec![], vec![(2, before[1].modseq), (3, seen[2].1 + 100)]),
        ] {
            let mut tx = t.store.begin_write().await.unwrap();
            tx.savepoint().await.unwrap();
            let done = tx
                .messages_set_flags_if_current(inbox.id, &writes, &unchanged)
                .await
                .unwrap();
            assert_eq!(done, None, "{writes:?} {unchanged:?}");
            tx.rollback_to_savepoint().await.unwrap();
            tx.commit().await.unwrap();
            let mut tx = t.store.begin_read().await.unwrap();
            assert_eq!(tx.message_list(inbox.id).await.unwrap(), before);
            let mb = tx.mailbox_by_id(inbox.id).await.unwrap().unwrap();
            assert_eq!(
                mb.highestmodseq,
                before.iter().map(|m| m.modseq).max().unwrap()
            );
        }

        // Nothing to write, all as seen: a read that says so (0), in a read transaction.
        let mut tx = t.store.begin_read().await.unwrap();
        let still: Vec<(i64, i64)> = before.iter().map(|m| (m.uid, m.modseq)).collect();
        let done = tx
            .messages_set_flags_if_current(inbox.id, &[], &still)
            .await
            .unwrap();
        assert_eq!(done, sqlite.then_some(0));
        // An expunged message is not as seen either.
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        tx.messages_delete(inbox.id, &[2]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = t.store.begin_read().await.unwrap();
        let done = tx
            .messages_set_flags_if_current(inbox.id, &[], &still)
            .await
            .unwrap();
        assert_eq!(done, None);
    }

    pub async fn imap_operations(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let mb = tx
            .mailbox_insert(
                &NewMailbox {
                    address_id: a.id,
                    name: "Work".into(),
                    special_use: "".into(),
                    uidvalidity: 9,
                },
                1,
            )
            .await
            .unwrap();
        for (i, size) in [10, 20, 30].iter().enumerate() {
            tx.message_append(mb.id, &msg(&format!("blob{i}"), *size))
                .await
                .unwrap();
        }
        let after_appends = tx
            .mailbox_by_id(mb.id)
            .await
            .unwrap()
            .unwrap()
            .highestmodseq;
        assert_eq!(
            tx.mailbox_stats(mb.id).await.unwrap(),
            MailboxStats {
                messages: 3,
                unseen: 3,
                size: 60
            }
        );
        // Flags: one new MODSEQ for the whole change.
        let m1 = tx
            .messages_set_flags(mb.id, &[(1, 1, "".into()), (2, 1 | 4, "$Important".into())])
            .await
            .unwrap();
        assert_eq!(m1, after_appends + 1);
        assert_eq!(
            tx.mailbox_stats(mb.id).await.unwrap().unseen,
            1,
            "\\Seen is bit 1"
        );
        let changed = tx
            .messages_changed_since(mb.id, after_appends)
            .await
            .unwrap();
        assert_eq!(
            changed
                .iter()
                .map(|m| (m.uid, m.flags, m.modseq))
                .collect::<Vec<_>>(),
            [(1, 1, m1), (2, 5, m1)]
        );
        assert_eq!(changed[1].keywords, "$Important");
        // Expunge: recorded for QRESYNC, counted out of the stats.
        let m2 = tx.messages_delete(mb.id, &[2, 99]).await.unwrap();
        assert!(m2 > m1);
        assert_eq!(tx.expunged_since(mb.id, m1).await.unwrap(), [2]);
        assert!(tx.expunged_since(mb.id, m2).await.unwrap().is_empty());
        assert_eq!(
            tx.mailbox_stats(mb.id).await.unwrap(),
            MailboxStats {
                messages: 2,
                unseen: 1,
                size: 40
            }
        );
        assert_eq!(
            tx.message_list(mb.id)
                .await
                .unwrap()
                .iter()
                .map(|m| m.uid)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        // \Recent: the first claim gets everything, the next one nothing old.
        assert_eq!(tx.mailbox_claim_recent(mb.id, 4).await.unwrap(), 1);
        assert_eq!(tx.mailbox_claim_recent(mb.id, 4).await.unwrap(), 4);
        assert_eq!(
            tx.mailbox_claim_recent(mb.id, 2).await.unwrap(),
            4,
            "never moves back"
        );
        tx.mailbox_rename(mb.id, "Work/2026").await.unwrap();
        tx.mailbox_set_subscribed(mb.id, false).await.unwrap();
        tx.mailbox_set_special_use(mb.id, "\\Archive")
            .await
            .unwrap();
        let renamed = tx.mailbox_get(a.id, "Work/2026").await.unwrap().unwrap();
        assert_eq!(
            (
                renamed.subscribed,
                renamed.special_use.as_str(),
                renamed.uidvalidity
            ),
            (false, "\\Archive", 9)
        );
        tx.mailbox_delete(mb.id).await.unwrap();
        assert!(tx.mailbox_get(a.id, "Work/2026").await.unwrap().is_none());
        assert!(
            tx.message_list(mb.id).await.unwrap().is_empty(),
            "messages go with it"
        );
        tx.commit().await.unwrap();
    }

    pub async fn dkim_and_send_log(t: &TestStore) {
        let a = address(t).await;
        let mut tx = t.store.begin_write().await.unwrap();
        let domain = tx.domain_by_name("acme.test").await.unwrap().unwrap();
        let key = DkimKey {
            id: 0,
            domain_id: domain.id,
            selector: "sel1".into(),
            algorithm: "ed25519-sha256".into(),
            private_key: "cHJpdg==".into(),
            public_key: "cHVi".into(),
            created_at: 0,
        };
        tx.dkim_insert(&key, 5).await.unwrap();
        assert!(matches!(
            tx.dkim_insert(&key, 5).await,
            Err(StoreError::Conflict(_))
        ));
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        tx.dkim_insert(&key, 5).await.unwrap();
        let keys = tx.dkim_keys(domain.id).await.unwrap();
        assert_eq!(
            (keys.len(), keys[0].selector.as_str(), keys[0].created_at),
            (1, "sel1", 5)
        );
        assert_eq!(tx.send_log_sum(a.id, 0).await.unwrap(), 0);
        assert_eq!(tx.send_log_add(a.id, 42, 100, 0).await.unwrap(), 42);
        assert_eq!(tx.send_log_add(a.id, 3, 200, 100).await.unwrap(), 3);
        assert_eq!(tx.send_log_sum(a.id, 0).await.unwrap(), 45);
        assert!(matches!(
            tx.send_log_add(a.id + 1000, 1, 200, 0).await,
            Err(StoreError::NotFound) | Err(StoreError::Conflict(_)) | Err(StoreError::Database(_))
        ));
        assert_eq!(
            tx.send_log_sum(a.id, 100).await.unwrap(),
            3,
            "rolling window excludes older"
        );
    }

    async fn org_domain_service(t: &TestStore, org: &str, domain: &str) -> (Org, MailService) {
        let mut tx = t.store.begin_write().await.unwrap();
        let o = tx.org_insert(org, 100).await.unwrap();
        let d = tx
            .domain_insert(o.id, domain, 100, Some(100), "")
            .await
            .unwrap();
        let s = tx
            .service_insert(
                &NewService {
                    org_id: o.id,
                    domain_id: d.id,
                    name: domain.into(),
                    tags: "".into(),
                    offer: "standard".into(),
                    address_quota: 5,
                },
                100,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (o, s)
    }

    fn new_address(service_id: i64, local: &str) -> NewAddress {
        NewAddress {
            service_id,
            local_part: local.into(),
            password_hash: "$argon2id$fake".into(),
            storage_quota_bytes: 1 << 30,
            forward_keep_copy: true,
        }
    }

    pub async fn directory_round_trip(t: &TestStore) {
        let (org, svc) = org_domain_service(t, "Acme", "acme.test").await;
        assert_eq!(svc.domain, "acme.test");
        assert_eq!(svc.org_name, "Acme");
        assert_eq!(svc.address_quota, 5);
        assert!(!svc.maintenance);

        let mut tx = t.store.begin_write().await.unwrap();
        let u = tx
            .user_insert(
                &NewUser {
                    login: "boss@acme.test".into(),
                    password_hash: "h".into(),
                    is_operator: false,
                },
                200,
            )
            .await
            .unwrap();
        tx.membership_upsert(org.id, u.id, "collaborator", 200)
            .await
            .unwrap();
        // Upsert changes the role in place.
        tx.membership_upsert(org.id, u.id, "admin", 201)
            .await
            .unwrap();
        tx.grant_set(u.id, svc.id, "use", 200).await.unwrap();
        tx.grant_set(u.id, svc.id, "manage", 201).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = t.store.begin().await.unwrap();
        let m = tx.membership_get(org.id, u.id).await.unwrap().unwrap();
        assert_eq!(
            (m.role.as_str(), m.org_name.as_str(), m.login.as_str()),
            ("admin", "Acme", "boss@acme.test")
        );
        assert_eq!(tx.memberships_of_user(u.id).await.unwrap().len(), 1);
        assert_eq!(tx.memberships_of_org(org.id).await.unwrap().len(), 1);
        assert_eq!(
            tx.grant_get(u.id, svc.id).await.unwrap().as_deref(),
            Some("manage")
        );
        let grants = tx.grants_of_user(u.id).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].domain, "acme.test");
        assert_eq!(
            tx.user_by_login("boss@acme.test")
                .await
                .unwrap()
                .unwrap()
                .id,
            u.id
        );
        assert!(
            tx.user_by_login("nobody@acme.test")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(tx.org_by_name("Acme").await.unwrap(), Some(org.clone()));
        assert_eq!(tx.org_by_id(org.id).await.unwrap(), Some(org.clone()));
        assert_eq!(tx.domain_list(Some(org.id)).await.unwrap().len(), 1);
        assert_eq!(tx.domain_list(None).await.unwrap().len(), 1);
        assert_eq!(
            tx.service_by_domain("acme.test").await.unwrap(),
            Some(svc.clone())
        );
        assert_eq!(tx.operator_count().await.unwrap(), 0);
        drop(tx);

        let mut tx = t.store.begin_write().await.unwrap();
        assert!(tx.grant_delete(u.id, svc.id).await.unwrap());
        assert!(!tx.grant_delete(u.id, svc.id).await.unwrap());
        tx.user_set_password(u.id, "h2").await.unwrap();
        tx.user_touch_login(u.id, 300).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = t.store.begin().await.unwrap();
        let u2 = tx.user_by_id(u.id).await.unwrap().unwrap();
        assert_eq!(
            (u2.password_hash.as_str(), u2.last_login_at),
            ("h2", Some(300))
        );
        assert_eq!(tx.grant_get(u.id, svc.id).await.unwrap(), None);
    }

    pub async fn uniqueness_is_enforced(t: &TestStore) {
        let (org, svc) = org_domain_service(t, "Acme", "acme.test").await;
        let mut tx = t.store.begin_write().await.unwrap();
        assert!(matches!(
            tx.org_insert("Acme", 1).await,
            Err(StoreError::Conflict(_))
        ));
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        assert!(matches!(
            tx.domain_insert(org.id, "acme.test", 1, Some(1), "").await,
            Err(StoreError::Conflict(_))
        ));
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        tx.address_insert(&new_address(svc.id, "info"), 1)
            .await
            .unwrap();
        assert!(matches!(
            tx.address_insert(&new_address(svc.id, "info"), 1).await,
            Err(StoreError::Conflict(_))
        ));
    }

    pub async fn rollback_discards_writes(t: &TestStore) {
        let mut tx = t.store.begin_write().await.unwrap();
        tx.org_insert("Ghost", 1).await.unwrap();
        drop(tx); // no commit
        let mut tx = t.store.begin().await.unwrap();
        assert!(tx.org_by_name("Ghost").await.unwrap().is_none());
        assert!(tx.org_list().await.unwrap().is_empty());
    }

    pub async fn service_updates_and_listing(t: &TestStore) {
        let (org, mut svc) = org_domain_service(t, "Acme", "acme.test").await;
        let (_, _) = org_domain_service(t, "Other", "other.test").await;
        svc.name = "Sales".into();
        svc.tags = "eu,sales".into();
        svc.offer = "pro".into();
        svc.address_quota = 20;
        svc.new_address_limit = Some(500);
        svc.maintenance = true;
        let mut tx = t.store.begin_write().await.unwrap();
        tx.lock_service(svc.id).await.unwrap();
        tx.service_update(&svc).await.unwrap();
        assert!(matches!(
            tx.lock_service(999_999).await,
            Err(StoreError::NotFound)
        ));
        tx.commit().await.unwrap();
        let mut tx = t.store.begin().await.unwrap();
        assert_eq!(tx.service_by_id(svc.id).await.unwrap(), Some(svc.clone()));
        assert_eq!(tx.service_list(None).await.unwrap().len(), 2);
        let mine = tx.service_list(Some(org.id)).await.unwrap();
        assert_eq!(mine, vec![svc]);
    }

    pub async fn addresses_aliases_forwards(t: &TestStore) {
        let (_, svc) = org_domain_service(t, "Acme", "acme.test").await;
        let mut tx = t.store.begin_write().await.unwrap();
        let a = tx
            .address_insert(&new_address(svc.id, "jean.dupont"), 10)
            .await
            .unwrap();
        let b = tx
            .address_insert(&new_address(svc.id, "info"), 11)
            .await
            .unwrap();
        let al = tx.alias_insert(svc.id, "jd", a.id, 12).await.unwrap();
        tx.forwards_set(
            b.id,
            &["x@elsewhere.test".into(), "y@elsewhere.test".into()],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(a.domain, "acme.test");
        assert_eq!(
            (al.local_part.as_str(), al.target_local_part.as_str()),
            ("jd", "jean.dupont")
        );

        let mut tx = t.store.begin_write().await.unwrap();
        assert_eq!(tx.address_count(svc.id).await.unwrap(), 2);
        let names: Vec<_> = tx
            .address_list(svc.id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.local_part)
            .collect();
        assert_eq!(names, ["info", "jean.dupont"]);
        assert_eq!(tx.alias_get(svc.id, "jd").await.unwrap(), Some(al.clone()));
        assert_eq!(tx.alias_list(svc.id).await.unwrap(), vec![al.clone()]);
        assert_eq!(
            tx.forwards_get(b.id).await.unwrap(),
            ["x@elsewhere.test", "y@elsewhere.test"]
        );
        tx.forwards_set(b.id, &["z@elsewhere.test".into()])
            .await
            .unwrap();
        assert_eq!(tx.forwards_get(b.id).await.unwrap(), ["z@elsewhere.test"]);

        let mut changed = b.clone();
        changed.storage_quota_bytes = 5;
        changed.forward_keep_copy = false;
        changed.may_change_password = false;
        changed.may_change_folders = false;
        changed.last_login_at = Some(99);
        tx.address_update(&changed).await.unwrap();
        tx.address_set_password(b.id, "newhash").await.unwrap();
        let got = tx.address_get(svc.id, "info").await.unwrap().unwrap();
        assert_eq!(got.password_hash, "newhash");
        changed.password_hash = "newhash".into();
        assert_eq!(got, changed);

        // Deleting an address removes its aliases and forwards with it.
        tx.address_delete(a.id).await.unwrap();
        assert!(tx.alias_get(svc.id, "jd").await.unwrap().is_none());
        assert!(matches!(
            tx.address_delete(a.id).await,
            Err(StoreError::NotFound)
        ));
        tx.address_delete(b.id).await.unwrap();
        assert!(tx.forwards_get(b.id).await.unwrap().is_empty());
        tx.commit().await.unwrap();
    }

    pub async fn creation_log_counts_window(t: &TestStore) {
        let (_, svc) = org_domain_service(t, "Acme", "acme.test").await;
        let mut tx = t.store.begin_write().await.unwrap();
        for (i, at) in [1000, 2000, 3000].into_iter().enumerate() {
            tx.creation_log_insert(svc.id, &format!("a{i}"), at)
                .await
                .unwrap();
        }
        assert_eq!(tx.creations_since(svc.id, 0).await.unwrap(), 3);
        assert_eq!(tx.creations_since(svc.id, 1000).await.unwrap(), 2);
        assert_eq!(tx.creations_since(svc.id, 3000).await.unwrap(), 0);
    }

    pub async fn audit_log_filters_and_pages(t: &TestStore) {
        let mut tx = t.store.begin_write().await.unwrap();
        for i in 0..5 {
            tx.audit_insert(
                &NewAudit {
                    actor: if i % 2 == 0 {
                        "user:a@x.test".into()
                    } else {
                        "cli:root".into()
                    },
                    org_id: if i < 3 { Some(1) } else { None },
                    action: "address.create".into(),
                    target: format!("a{i}@x.test"),
                    detail: "{}".into(),
                },
                100 + i,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let mut tx = t.store.begin().await.unwrap();
        let all = tx
            .audit_list(&AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].target, "a4@x.test", "newest first");
        let org1 = tx
            .audit_list(&AuditFilter {
                org_id: Some(1),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(org1.len(), 3);
        let by_actor = tx
            .audit_list(&AuditFilter {
                actor: Some("cli:root".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_actor.len(), 2);
        let page = tx
            .audit_list(&AuditFilter {
                before_id: Some(all[1].id),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
            ["a2@x.test", "a1@x.test"]
        );
    }

    pub async fn tokens(t: &TestStore) {
        let mut tx = t.store.begin_write().await.unwrap();
        let u = tx
            .user_insert(
                &NewUser {
                    login: "op@x.test".into(),
                    password_hash: "h".into(),
                    is_operator: true,
                },
                1,
            )
            .await
            .unwrap();
        let tok = tx
            .token_insert(
                &NewToken {
                    user_id: u.id,
                    kind: "apikey".into(),
                    name: "ci".into(),
                    token_hash: "abc".into(),
                    expires_at: None,
                    scope: String::new(),
                },
                5,
            )
            .await
            .unwrap();
        assert_eq!(tx.operator_count().await.unwrap(), 1);
        tx.token_touch(tok.id, 9).await.unwrap();
        assert_eq!(
            tx.token_by_hash("abc").await.unwrap().unwrap().last_used_at,
            Some(9)
        );
        assert_eq!(tx.tokens_of_user(u.id, "apikey").await.unwrap().len(), 1);
        assert!(tx.tokens_of_user(u.id, "session").await.unwrap().is_empty());
        assert!(matches!(
            tx.token_insert(
                &NewToken {
                    user_id: u.id,
                    kind: "session".into(),
                    name: "".into(),
                    token_hash: "abc".into(),
                    expires_at: Some(10),
                    scope: String::new(),
                },
                5
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        drop(tx);
        let mut tx = t.store.begin_write().await.unwrap();
        let tok = tx.token_by_hash("abc").await.unwrap();
        assert!(
            tok.is_none(),
            "the transaction that inserted it was rolled back"
        );
    }

    /// Two writers that each check "fewer than 5 addresses" and then insert, concurrently: the
    /// write lock makes check-then-insert atomic, so exactly 5 rows exist at the end.
    /// A setting made once (the platform's ARC key, the SRS secret): when two writers race,
    /// the second must neither overwrite the first nor keep its own value.
    pub async fn first_settings_writer_wins(t: &TestStore) {
        let mut first = t.store.begin_write().await.unwrap();
        assert!(
            first
                .settings_put_new("global", 0, "k", "one", 1)
                .await
                .unwrap()
        );
        let store = t.store.clone();
        let second = tokio::spawn(async move {
            let mut tx = store.begin_write().await.unwrap();
            let won = tx
                .settings_put_new("global", 0, "k", "two", 2)
                .await
                .unwrap();
            let seen = tx.settings_get("global", 0, "k").await.unwrap();
            tx.commit().await.unwrap();
            (won, seen)
        });
        // The second writer is now waiting (SQLite: for its turn; PostgreSQL: on the key).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second writer did not wait");
        first.commit().await.unwrap();
        assert_eq!(second.await.unwrap(), (false, Some("one".into())));
        let mut tx = t.store.begin().await.unwrap();
        assert_eq!(
            tx.settings_get("global", 0, "k").await.unwrap().as_deref(),
            Some("one")
        );
    }

    pub async fn locked_writers_serialise(t: &TestStore) {
        let (_, svc) = org_domain_service(t, "Acme", "acme.test").await;
        let mut tasks = Vec::new();
        for w in 0..4 {
            let store = t.store.clone();
            tasks.push(tokio::spawn(async move {
                let mut created = 0;
                for i in 0..5 {
                    let mut tx = store.begin_write().await.unwrap();
                    tx.lock_service(svc.id).await.unwrap();
                    if tx.address_count(svc.id).await.unwrap() >= 5 {
                        continue;
                    }
                    // Give the other writers a chance to interleave if the lock did not hold.
                    tokio::task::yield_now().await;
                    tx.address_insert(&new_address(svc.id, &format!("w{w}n{i}")), 1)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    created += 1;
                }
                created
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 5);
        let mut tx = t.store.begin().await.unwrap();
        assert_eq!(tx.address_count(svc.id).await.unwrap(), 5);
    }
}

mod mail {
    use super::*;

    pub async fn address(t: &TestStore) -> Address {
        let mut tx = t.store.begin_write().await.unwrap();
        let o = tx.org_insert("Acme", 1).await.unwrap();
        let d = tx
            .domain_insert(o.id, "acme.test", 1, Some(1), "")
            .await
            .unwrap();
        let s = tx
            .service_insert(
                &NewService {
                    org_id: o.id,
                    domain_id: d.id,
                    name: "acme.test".into(),
                    tags: "".into(),
                    offer: "standard".into(),
                    address_quota: 5,
                },
                1,
            )
            .await
            .unwrap();
        let a = tx
            .address_insert(
                &NewAddress {
                    service_id: s.id,
                    local_part: "info".into(),
                    password_hash: "h".into(),
                    storage_quota_bytes: 1 << 20,
                    forward_keep_copy: true,
                },
                1,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        a
    }

    /// The address's INBOX (UIDVALIDITY 7), created in `tx`.
    pub async fn inbox(tx: &mut dyn Tx, address_id: i64) -> Mailbox {
        tx.mailbox_insert(
            &NewMailbox {
                address_id,
                name: "INBOX".into(),
                special_use: "".into(),
                uidvalidity: 7,
            },
            5,
        )
        .await
        .unwrap()
    }

    pub fn msg(blob: &str, size: i64) -> NewMessage {
        NewMessage {
            blob_id: blob.into(),
            size,
            internal_date: 100,
            subject: "Hello".into(),
            header_from: "a@b.test".into(),
            ..Default::default()
        }
    }
}

mod blobs {
    use postfach_store::testing::TempDir;
    use postfach_store::{BlobId, BlobStore, FsBlobStore, StoreError};

    #[tokio::test]
    async fn put_get_dedupe_delete() {
        let dir = TempDir::new("postfach-blobs");
        let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let body = b"From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n".to_vec();
        let id = store.put(&body).await.unwrap();
        assert_eq!(id, BlobId::of(&body));
        assert_eq!(store.put(&body).await.unwrap(), id, "same content, same id");
        assert_eq!(store.get(&id).await.unwrap(), body);
        assert!(store.exists(&id).await.unwrap());
        // Nothing is left behind in the temporary area.
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert!(store.delete(&id).await.unwrap());
        assert!(!store.delete(&id).await.unwrap());
        assert!(matches!(store.get(&id).await, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn corruption_is_detected() {
        let dir = TempDir::new("postfach-blobs");
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = store.put(b"original").await.unwrap();
        let h = id.as_str();
        let path = dir.path().join(&h[0..2]).join(&h[2..4]).join(h);
        std::fs::write(&path, b"tampered").unwrap();
        assert!(matches!(store.get(&id).await, Err(StoreError::Corrupt(_))));
    }
}
