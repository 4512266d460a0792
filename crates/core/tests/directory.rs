//! Service-layer rules (PRODUCT.md M1–M7, M9, M11, M12), each scenario on SQLite and on
//! PostgreSQL. These call `Directory` the way the CLI and the API do.

use std::sync::Arc;

use postfach_core::model::{GrantLevel, Role};
use postfach_core::{
    Actor, AddressChanges, Directory, Error, ManualClock, NewServiceRequest, Policy, ServiceChanges,
};
use postfach_store::testing::TestStore;

postfach_store::on_both!(
    quota_duplicates_and_aliases,
    catchall_and_offers,
    rolling_creation_limit,
    rename_is_refused_with_alias_hint,
    roles_grants_and_tenant_isolation,
    csv_import_report_and_export,
    audit_log_records_changes,
    sessions_and_api_keys,
    concurrent_creations_respect_quota,
    concurrent_first_use_makes_one_platform_key,
    mailbox_user_rights,
    validation_errors,
    mailbox_access,
    folder_index_follows_changes_from_other_processes,
);

const PW: &str = "G7#kq2LmWz-x";
const START: i64 = 1_800_000_000;

fn cli() -> Actor {
    Actor::Cli("root".into())
}

struct Env {
    dir: Directory,
    clock: Arc<ManualClock>,
}

fn env(t: &TestStore) -> Env {
    let clock = Arc::new(ManualClock::new(START));
    let blobs = Arc::new(postfach_store::FsBlobStore::open(t.dir.path().join("blobs")).unwrap());
    let dir = Directory::new(t.store.clone(), blobs, Policy::default()).with_clock(clock.clone());
    Env { dir, clock }
}

async fn service(d: &Directory, org: &str, domain: &str, offer: &str, quota: Option<i64>) {
    if d.list_orgs(&cli())
        .await
        .unwrap()
        .iter()
        .all(|o| o.name != org)
    {
        d.create_org(&cli(), org).await.unwrap();
    }
    d.add_domain(&cli(), org, domain).await.unwrap();
    d.create_service(
        &cli(),
        &NewServiceRequest {
            org: org.into(),
            domain: domain.into(),
            offer: offer.into(),
            quota,
            name: None,
            tags: vec![],
        },
    )
    .await
    .unwrap();
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    r.expect_err("expected a refusal").code()
}

mod scenarios {
    use super::*;

    pub async fn quota_duplicates_and_aliases(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        let svc = d.get_service(&cli(), "ACME.test").await.unwrap();
        assert_eq!(
            (
                svc.address_quota,
                svc.daily_send_limit,
                svc.catchall_allowed
            ),
            (5, 1440, true)
        );

        for n in ["a", "b", "c", "d", "e"] {
            d.add_address(&cli(), &format!("{n}@acme.test"), PW, None)
                .await
                .unwrap();
        }
        let e = d
            .add_address(&cli(), "f@acme.test", PW, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "quota_exceeded");
        assert!(e.to_string().contains("5 of 5"), "{e}");
        assert_eq!(
            code(d.add_address(&cli(), "A@Acme.Test", PW, None).await),
            "already_exists"
        );

        d.add_alias(&cli(), "sales@acme.test", "a@acme.test")
            .await
            .unwrap();
        assert_eq!(
            code(d.add_alias(&cli(), "sales@acme.test", "b@acme.test").await),
            "already_exists"
        );
        assert_eq!(
            code(d.add_alias(&cli(), "b@acme.test", "a@acme.test").await),
            "already_exists"
        );
        assert_eq!(
            code(d.add_alias(&cli(), "x@acme.test", "sales@acme.test").await),
            "not_found"
        );
        assert_eq!(
            code(d.add_alias(&cli(), "x@other.test", "a@acme.test").await),
            "invalid_input"
        );

        d.update_service(
            &cli(),
            "acme.test",
            &ServiceChanges {
                quota: Some(6),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // An alias name is taken for addresses too.
        assert_eq!(
            code(d.add_address(&cli(), "sales@acme.test", PW, None).await),
            "already_exists"
        );
        let a = d.get_address(&cli(), "a@acme.test").await.unwrap();
        assert_eq!(a.aliases, ["sales@acme.test"]);
        assert_eq!(a.storage_quota_bytes, 20 * 1024 * 1024 * 1024);

        // Deleting frees the slot and takes the alias along.
        let gone = d.delete_address(&cli(), "a@acme.test").await.unwrap();
        assert_eq!(gone.aliases, ["sales@acme.test"]);
        assert!(
            d.list_aliases(&cli(), "acme.test")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            d.get_service(&cli(), "acme.test")
                .await
                .unwrap()
                .addresses_used,
            4
        );
        assert_eq!(
            code(d.get_address(&cli(), "a@acme.test").await),
            "not_found"
        );
    }

    pub async fn catchall_and_offers(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "starter.test", "starter", None).await;
        let e = d
            .add_address(&cli(), "catchall@starter.test", PW, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "catchall_not_available");
        assert!(e.to_string().contains("starter"), "{e}");
        assert_eq!(
            code(
                d.create_service(
                    &cli(),
                    &NewServiceRequest {
                        org: "Acme".into(),
                        domain: "starter.test".into(),
                        offer: "starter".into(),
                        quota: None,
                        name: None,
                        tags: vec![],
                    }
                )
                .await
            ),
            "already_exists"
        );
        // Starter quota is exactly 1.
        assert_eq!(
            code(
                d.update_service(
                    &cli(),
                    "starter.test",
                    &ServiceChanges {
                        quota: Some(2),
                        ..Default::default()
                    }
                )
                .await
            ),
            "invalid_input"
        );
        d.add_address(&cli(), "info@starter.test", PW, None)
            .await
            .unwrap();
        assert_eq!(
            code(d.add_address(&cli(), "two@starter.test", PW, None).await),
            "quota_exceeded"
        );

        // Upgrading raises the quota to the new offer's minimum; catchall becomes possible.
        let up = d
            .update_service(
                &cli(),
                "starter.test",
                &ServiceChanges {
                    offer: Some("standard".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (up.offer.as_str(), up.address_quota, up.daily_send_limit),
            ("standard", 5, 1440)
        );
        let c = d
            .add_address(&cli(), "catchall@starter.test", PW, None)
            .await
            .unwrap();
        assert!(c.is_catchall);
        // Downgrading is refused while a catchall exists, and while too many addresses exist.
        let e = d
            .update_service(
                &cli(),
                "starter.test",
                &ServiceChanges {
                    offer: Some("starter".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "conflict");
        assert!(
            e.to_string().contains("2 addresses") || e.to_string().contains("catchall"),
            "{e}"
        );
        d.delete_address(&cli(), "catchall@starter.test")
            .await
            .unwrap();
        let down = d
            .update_service(
                &cli(),
                "starter.test",
                &ServiceChanges {
                    offer: Some("starter".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (
                down.address_quota,
                down.daily_send_limit,
                down.catchall_allowed
            ),
            (1, 100, false)
        );
        assert_eq!(
            code(
                d.update_service(
                    &cli(),
                    "starter.test",
                    &ServiceChanges {
                        offer: Some("gold".into()),
                        ..Default::default()
                    }
                )
                .await
            ),
            "invalid_input"
        );
    }

    pub async fn rolling_creation_limit(t: &TestStore) {
        let Env { dir: d, clock } = env(t);
        service(&d, "Acme", "big.test", "pro", Some(200)).await;
        for i in 0..50 {
            d.add_address(&cli(), &format!("u{i}@big.test"), PW, None)
                .await
                .unwrap();
            clock.advance(60);
        }
        let e = d
            .add_address(&cli(), "u50@big.test", PW, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "creation_limit");
        assert!(
            e.to_string().contains("50 new addresses per 24 hours"),
            "{e}"
        );
        // Deleting does not give the slot back: the limit counts creations.
        d.delete_address(&cli(), "u0@big.test").await.unwrap();
        assert_eq!(
            code(d.add_address(&cli(), "u50@big.test", PW, None).await),
            "creation_limit"
        );
        // 24 h after the first creation, one slot frees up (rolling window).
        clock.advance(24 * 3600 - 50 * 60 + 1);
        d.add_address(&cli(), "u50@big.test", PW, None)
            .await
            .unwrap();
        assert_eq!(
            code(d.add_address(&cli(), "u51@big.test", PW, None).await),
            "creation_limit"
        );
        // Only operators lift the restriction for one service.
        d.update_service(
            &cli(),
            "big.test",
            &ServiceChanges {
                new_address_limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        d.add_address(&cli(), "u51@big.test", PW, None)
            .await
            .unwrap();
        assert_eq!(
            d.get_service(&cli(), "big.test")
                .await
                .unwrap()
                .new_address_limit,
            500
        );
    }

    pub async fn rename_is_refused_with_alias_hint(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_address(&cli(), "adresse1@acme.test", PW, None)
            .await
            .unwrap();
        let e = d
            .rename_address(&cli(), "adresse1@acme.test", "adresse2")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "rename_not_supported");
        let msg = e.to_string();
        assert!(
            msg.contains("alias add adresse2@acme.test --to adresse1@acme.test"),
            "{msg}"
        );
        assert_eq!(
            code(d.rename_address(&cli(), "nobody@acme.test", "x").await),
            "not_found"
        );
    }

    pub async fn roles_grants_and_tenant_isolation(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        service(&d, "Acme", "shop.acme.test", "standard", None).await;
        service(&d, "Rival", "rival.test", "standard", None).await;
        d.add_user(&cli(), "legal@acme.test", "Acme", Role::Legal, Some(PW))
            .await
            .unwrap();
        d.add_user(&cli(), "admin@acme.test", "Acme", Role::Admin, Some(PW))
            .await
            .unwrap();
        let created = d
            .add_user(&cli(), "colla@acme.test", "Acme", Role::Collaborator, None)
            .await
            .unwrap();
        assert!(
            created.generated_password.is_some(),
            "a password is generated when none is given"
        );
        d.add_user(&cli(), "ext@acme.test", "Acme", Role::External, Some(PW))
            .await
            .unwrap();
        d.add_user(&cli(), "boss@rival.test", "Rival", Role::Admin, Some(PW))
            .await
            .unwrap();
        let admin = d.actor_for_login("admin@acme.test").await.unwrap();
        let legal = d.actor_for_login("legal@acme.test").await.unwrap();
        let colla = d.actor_for_login("colla@acme.test").await.unwrap();
        let ext = d.actor_for_login("ext@acme.test").await.unwrap();
        let rival = d.actor_for_login("boss@rival.test").await.unwrap();

        // Administrators manage every product of their organization.
        d.add_address(&admin, "info@acme.test", PW, None)
            .await
            .unwrap();
        d.update_service(
            &admin,
            "acme.test",
            &ServiceChanges {
                maintenance: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(code(d.create_org(&admin, "Mine").await), "forbidden");

        // A collaborator without a grant reaches nothing.
        let e = d
            .add_address(&colla, "x@acme.test", PW, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert!(
            e.to_string()
                .contains("no access to mail service acme.test"),
            "{e}"
        );
        assert_eq!(
            code(d.list_addresses(&colla, "acme.test", None).await),
            "forbidden"
        );
        assert!(d.list_services(&colla, None).await.unwrap().is_empty());
        assert_eq!(
            code(
                d.grant(&colla, "colla@acme.test", "acme.test", GrantLevel::Manage)
                    .await
            ),
            "forbidden"
        );

        // "use" sees, "manage" changes; offer and maintenance stay with administrators.
        d.grant(&admin, "colla@acme.test", "acme.test", GrantLevel::Use)
            .await
            .unwrap();
        assert_eq!(
            d.list_addresses(&colla, "acme.test", None)
                .await
                .unwrap()
                .len(),
            1
        );
        let e = d
            .add_address(&colla, "x@acme.test", PW, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not manage"), "{e}");
        d.grant(&admin, "colla@acme.test", "acme.test", GrantLevel::Manage)
            .await
            .unwrap();
        d.add_address(&colla, "x@acme.test", PW, None)
            .await
            .unwrap();
        d.update_service(
            &colla,
            "acme.test",
            &ServiceChanges {
                name: Some("Sales".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let e = d
            .update_service(
                &colla,
                "acme.test",
                &ServiceChanges {
                    maintenance: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert!(
            e.to_string()
                .contains("administrators and legal representatives"),
            "{e}"
        );
        assert_eq!(
            code(
                d.update_service(
                    &colla,
                    "acme.test",
                    &ServiceChanges {
                        offer: Some("pro".into()),
                        ..Default::default()
                    }
                )
                .await
            ),
            "forbidden"
        );
        let mine: Vec<_> = d
            .list_services(&colla, None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.domain)
            .collect();
        assert_eq!(mine, ["acme.test"], "only the granted service is listed");
        assert_eq!(
            code(d.list_addresses(&colla, "shop.acme.test", None).await),
            "forbidden"
        );
        assert_eq!(
            code(d.list_addresses(&ext, "acme.test", None).await),
            "forbidden"
        );

        // Revoking takes effect at once.
        d.revoke(&admin, "colla@acme.test", "acme.test")
            .await
            .unwrap();
        assert_eq!(
            code(d.add_address(&colla, "y@acme.test", PW, None).await),
            "forbidden"
        );

        // Another tenant cannot even see that the service exists.
        assert_eq!(code(d.get_service(&rival, "acme.test").await), "not_found");
        assert_eq!(
            code(d.add_address(&rival, "z@acme.test", PW, None).await),
            "not_found"
        );
        assert_eq!(code(d.list_users(&rival, "Acme").await), "not_found");
        assert_eq!(
            code(d.add_domain(&rival, "Acme", "steal.test").await),
            "not_found"
        );
        assert_eq!(
            code(d.list_audit(&rival, Some("Acme"), 10, None).await),
            "not_found"
        );
        let rival_sees: Vec<_> = d
            .list_services(&rival, None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.domain)
            .collect();
        assert_eq!(rival_sees, ["rival.test"]);

        // M1: administrators invite; they cannot put an account into the organization.
        d.add_user(&cli(), "l2@acme.test", "Rival", Role::External, Some(PW))
            .await
            .unwrap();
        assert_eq!(
            code(
                d.add_user(&legal, "l2@acme.test", "Acme", Role::Legal, Some(PW))
                    .await
            ),
            "forbidden"
        );
        // Only legal representatives appoint legal representatives; the last one stays.
        assert_eq!(
            code(
                d.invite_user(&admin, "l2@acme.test", "Acme", Role::Legal)
                    .await
            ),
            "forbidden"
        );
        let invited = d
            .invite_user(&legal, "l2@acme.test", "Acme", Role::Legal)
            .await
            .unwrap();
        // The same answer for a login that has no account anywhere.
        let unknown = d
            .invite_user(&legal, "nobody@elsewhere.test", "Acme", Role::Legal)
            .await
            .unwrap();
        assert_eq!(
            (invited.role, &invited.org, &invited.invited_by),
            (unknown.role, &unknown.org, &unknown.invited_by)
        );
        // Not a member until the account accepts; then with the invitation's role.
        assert_eq!(
            code(
                d.set_role(&legal, "l2@acme.test", "Acme", Role::Admin)
                    .await
            ),
            "not_found"
        );
        let l2 = d.actor_for_login("l2@acme.test").await.unwrap();
        assert_eq!(d.my_invitations(&l2).await.unwrap().len(), 1);
        assert_eq!(
            code(d.accept_invitation(&colla, "Acme").await),
            "not_found",
            "nobody accepts for somebody else"
        );
        let joined = d.accept_invitation(&l2, "Acme").await.unwrap();
        assert!(
            joined
                .memberships
                .iter()
                .any(|m| m.org == "Acme" && m.role == Role::Legal)
        );
        assert!(d.my_invitations(&l2).await.unwrap().is_empty());
        d.set_role(&legal, "l2@acme.test", "Acme", Role::Admin)
            .await
            .unwrap();
        assert_eq!(
            code(
                d.set_role(&legal, "legal@acme.test", "Acme", Role::Admin)
                    .await
            ),
            "conflict"
        );
        assert_eq!(
            code(
                d.set_role(&colla, "ext@acme.test", "Acme", Role::Admin)
                    .await
            ),
            "forbidden"
        );

        // A user can belong to several organizations.
        d.add_user(&cli(), "colla@acme.test", "Rival", Role::External, None)
            .await
            .unwrap();
        let u = d.get_user(&colla, "colla@acme.test").await.unwrap();
        assert_eq!(u.memberships.len(), 2);
        assert_eq!(
            code(
                d.add_user(&cli(), "colla@acme.test", "Rival", Role::Admin, None)
                    .await
            ),
            "conflict"
        );
    }

    pub async fn csv_import_report_and_export(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_address(&cli(), "existing@acme.test", PW, None)
            .await
            .unwrap();
        let csv = format!(
            "local_part,password,forward_to,delete_after_forward\n\
             jean.dupont,{PW},,\n\
             weak,password1,,\n\
             bad name,{PW},,\n\
             jean.dupont,{PW},,\n\
             existing,{PW},,\n\
             fwd,{PW},boss@elsewhere.test,1\n\
             nofwd,{PW},,1\n\
             badd,{PW},x@elsewhere.test,2\n\
             catchall,{PW},,0\n\
             four,{PW},,\n\
             five,{PW},,\n"
        );
        let mut calls = Vec::new();
        let report = d
            .import_csv(&cli(), "acme.test", csv.as_bytes(), &mut |done, total| {
                calls.push((done, total))
            })
            .await
            .unwrap();
        let outcome: Vec<(usize, &str, &str, Option<&str>)> = report
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.local_part.as_str(),
                    r.status.as_str(),
                    r.code.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            outcome,
            [
                (2, "jean.dupont", "created", None),
                (3, "weak", "refused", Some("weak_password")),
                (4, "bad name", "refused", Some("invalid_input")),
                (5, "jean.dupont", "refused", Some("conflict")),
                (6, "existing", "refused", Some("already_exists")),
                (7, "fwd", "created", None),
                (8, "nofwd", "refused", Some("invalid_input")),
                (9, "badd", "refused", Some("invalid_input")),
                (10, "catchall", "created", None),
                (11, "four", "created", None),
                (12, "five", "refused", Some("quota_exceeded")),
            ]
        );
        assert_eq!((report.created, report.refused), (4, 7));
        // An unclosed quote: the row is refused and nothing of it (a password) is echoed.
        let broken = "local_part,password,forward_to,delete_after_forward\n\
                      \"x,Secret-Pass-1!,,\nnext,Other-Pass-2!,,\n";
        let report = d
            .import_csv(&cli(), "acme.test", broken.as_bytes(), &mut |_, _| {})
            .await
            .unwrap();
        let shown = serde_json::to_string(&report).unwrap();
        assert!(
            !shown.contains("Secret-Pass") && !shown.contains("Other-Pass"),
            "{shown}"
        );
        assert!(shown.contains("quote"), "{shown}");
        assert_eq!(calls.last(), Some(&(11, 11)));
        assert_eq!(calls.len(), 11);
        // Refused rows left nothing behind; the forward columns were stored with the address.
        let names: Vec<_> = d
            .list_addresses(&cli(), "acme.test", None)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.local_part)
            .collect();
        assert_eq!(
            names,
            ["catchall", "existing", "four", "fwd", "jean.dupont"]
        );
        let fwd = d.get_address(&cli(), "fwd@acme.test").await.unwrap();
        assert_eq!(
            (fwd.forward_to.clone(), fwd.forward_keep_copy),
            (vec!["boss@elsewhere.test".to_string()], false)
        );

        let export = d.export_csv(&cli(), "acme.test").await.unwrap();
        let mut lines = export.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("local_part,password,forward_to,delete_after_forward,address")
        );
        let fwd_line = export.lines().find(|l| l.starts_with("fwd,")).unwrap();
        assert!(
            fwd_line.starts_with("fwd,,boss@elsewhere.test,1,fwd@acme.test,"),
            "{fwd_line}"
        );
        assert_eq!(export.lines().count(), 6);
        // One format: the export, with passwords filled in, imports into another service.
        service(&d, "Acme", "copy.test", "standard", None).await;
        let filled: String = export
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    format!("{l}\n")
                } else {
                    let (local, rest) = l.split_once(',').unwrap();
                    format!("{local},{PW}{}\n", &rest[rest.find(',').unwrap()..])
                }
            })
            .collect();
        let report = d
            .import_csv(&cli(), "copy.test", filled.as_bytes(), &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!((report.created, report.refused), (5, 0), "{report:?}");

        // A file without the header row is refused as a whole.
        let e = d
            .import_csv(
                &cli(),
                "acme.test",
                format!("x,{PW}\n").as_bytes(),
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("header row"), "{e}");
    }

    pub async fn audit_log_records_changes(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_user(&cli(), "admin@acme.test", "Acme", Role::Admin, Some(PW))
            .await
            .unwrap();
        let admin = d.actor_for_login("admin@acme.test").await.unwrap();
        d.add_address(&admin, "info@acme.test", PW, None)
            .await
            .unwrap();
        d.set_address_password(&admin, "info@acme.test", "N3w!Passw0rd-z")
            .await
            .unwrap();
        assert!(d.login("admin@acme.test", "wrong", None).await.is_err());
        d.login("admin@acme.test", PW, None).await.unwrap();

        let org_log = d.list_audit(&admin, Some("Acme"), 100, None).await.unwrap();
        let actions: Vec<_> = org_log
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("user:admin@acme.test", "address.password", "info@acme.test"),
                ("user:admin@acme.test", "address.create", "info@acme.test"),
                ("cli:root", "user.add", "admin@acme.test"),
                ("cli:root", "service.create", "acme.test"),
                ("cli:root", "domain.create", "acme.test"),
                ("cli:root", "org.create", "Acme"),
            ]
        );
        // Never a secret in the log.
        let all =
            serde_json::to_string(&d.list_audit(&cli(), None, 1000, None).await.unwrap()).unwrap();
        assert!(!all.contains(PW) && !all.contains("argon2"), "{all}");
        // The account sees its own activity, logins and failed logins included.
        let mine = d.list_audit(&admin, None, 100, None).await.unwrap();
        let actions: Vec<_> = mine.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user.login",
                "user.login_failed",
                "address.password",
                "address.create"
            ]
        );
        // Paging backwards from an entry.
        let page = d
            .list_audit(&admin, None, 1, Some(mine[1].id))
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].action, "address.password");
    }

    pub async fn sessions_and_api_keys(t: &TestStore) {
        let Env { dir: d, clock } = env(t);
        let (login, password) = d
            .bootstrap_operator("admin@mail.example.test")
            .await
            .unwrap()
            .unwrap();
        assert!(
            d.bootstrap_operator("other@mail.example.test")
                .await
                .unwrap()
                .is_none(),
            "only once"
        );
        let s = d.login(&login, &password, None).await.unwrap();
        assert!(s.token.starts_with("pfs_"));
        let actor = d.authenticate_token(&s.token).await.unwrap();
        assert!(actor.is_operator());
        assert_eq!(code(d.login(&login, "nope", None).await), "unauthenticated");
        assert_eq!(
            code(d.login("ghost@x.test", &password, None).await),
            "unauthenticated"
        );
        assert_eq!(
            code(d.authenticate_token("pfs_bogus").await),
            "unauthenticated"
        );
        d.logout(&s.token).await.unwrap();
        assert_eq!(
            code(d.authenticate_token(&s.token).await),
            "unauthenticated"
        );

        // S4: with the client's address, repeated failures are throttled before checking.
        let ip: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(
                code(d.login(&login, "nope", Some(ip)).await),
                "unauthenticated"
            );
        }
        assert_eq!(
            code(d.login(&login, &password, Some(ip)).await),
            "too_many_attempts"
        );
        clock.advance(15 * 60 + 1);
        d.login(&login, &password, Some(ip)).await.unwrap();

        let s2 = d.login(&login, &password, None).await.unwrap();
        clock.advance(12 * 3600);
        assert_eq!(
            code(d.authenticate_token(&s2.token).await),
            "unauthenticated",
            "sessions expire"
        );

        let key = d
            .create_api_key(&cli(), &login, "deploy", &Default::default())
            .await
            .unwrap();
        assert!(key.token.starts_with("pfk_"));
        clock.advance(365 * 24 * 3600);
        assert_eq!(
            d.authenticate_token(&key.token).await.unwrap().login(),
            Some(login.as_str())
        );
        let keys = d.list_api_keys(&cli(), &login).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].last_used_at.is_some());
        d.revoke_api_key(&cli(), &login, keys[0].id).await.unwrap();
        assert_eq!(
            code(d.authenticate_token(&key.token).await),
            "unauthenticated"
        );
    }

    pub async fn concurrent_creations_respect_quota(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                d.add_address(&cli(), &format!("n{i}@acme.test"), PW, None)
                    .await
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e.code(), "quota_exceeded", "{e}"),
            }
        }
        assert_eq!(ok, 5);
        assert_eq!(
            d.get_service(&cli(), "acme.test")
                .await
                .unwrap()
                .addresses_used,
            5
        );
    }

    /// F11: the platform's ARC key is made on first use. Deliveries that race to make it must
    /// all seal with the one key the platform publishes, else a receiver's ARC check fails.
    pub async fn concurrent_first_use_makes_one_platform_key(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move { d.arc_signing_key().await }));
        }
        let mut keys = Vec::new();
        for task in tasks {
            keys.push(task.await.unwrap().unwrap().private_der);
        }
        keys.dedup();
        assert_eq!(keys.len(), 1, "racing first uses made different keys");
        let later = d.arc_signing_key().await.unwrap().private_der;
        assert_eq!(keys[0], later, "the stored key is not the one handed out");
    }

    pub async fn mailbox_user_rights(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_address(&cli(), "jean@acme.test", PW, None)
            .await
            .unwrap();
        let new_pw = "Another#Pass9";
        d.change_own_password("jean@acme.test", PW, new_pw)
            .await
            .unwrap();
        assert_eq!(
            code(
                d.change_own_password("jean@acme.test", PW, "Third#Pass99")
                    .await
            ),
            "unauthenticated"
        );
        assert_eq!(
            code(
                d.change_own_password("jean@acme.test", new_pw, "weak")
                    .await
            ),
            "weak_password"
        );
        // M11: the administrator revokes the right.
        let v = d
            .update_address(
                &cli(),
                "jean@acme.test",
                &AddressChanges {
                    may_change_password: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!v.may_change_password && v.may_change_autoresponder);
        assert_eq!(
            code(
                d.change_own_password("jean@acme.test", new_pw, "Third#Pass99")
                    .await
            ),
            "forbidden"
        );
        // Forwarding settings are validated.
        assert_eq!(
            code(
                d.update_address(
                    &cli(),
                    "jean@acme.test",
                    &AddressChanges {
                        forward_to: Some(vec!["jean@acme.test".into()]),
                        ..Default::default()
                    }
                )
                .await
            ),
            "invalid_input"
        );
        let v = d
            .update_address(
                &cli(),
                "jean@acme.test",
                &AddressChanges {
                    forward_to: Some(vec!["a@ext.test".into(), "A@EXT.test".into()]),
                    storage_quota_mib: Some(512),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (v.forward_to.len(), v.storage_quota_bytes),
            (1, 512 * 1024 * 1024)
        );
    }

    pub async fn mailbox_access(t: &TestStore) {
        use postfach_core::mail::{AppendRequest, FlagChange, FlagOp};
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_address(&cli(), "jean@acme.test", PW, Some(1))
            .await
            .unwrap();
        let login = d.mailbox_login("jean@acme.test", PW, None).await.unwrap();
        let a = login.address_id;
        let names = |d: &Directory| {
            let d = d.clone();
            async move {
                d.folders(a)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            names(&d).await,
            ["Archive", "Drafts", "INBOX", "Sent", "Spam", "Trash"]
        );

        // CREATE makes the missing superiors (RFC 9051 §6.3.4).
        d.folder_create(a, "Projects/2026/Q1", "").await.unwrap();
        assert!(names(&d).await.contains(&"Projects/2026".to_string()));
        assert_eq!(
            code(d.folder_create(a, "Projects/2026/Q1", "").await),
            "already_exists"
        );
        // Deleting a folder with inferiors leaves a \Noselect name (RFC 9051 §6.3.4): it
        // takes no messages, cannot be deleted while it has inferiors, stays when they go,
        // and can then be deleted, or created again with a new UIDVALIDITY.
        let before = d.folder(a, "Projects/2026").await.unwrap().unwrap();
        d.folder_delete(a, "Projects/2026").await.unwrap();
        assert!(d.folder(a, "Projects/2026").await.unwrap().is_none());
        assert_eq!(
            code(d.append(a, "Projects/2026", AppendRequest::default()).await),
            "not_found"
        );
        assert_eq!(code(d.folder_delete(a, "Projects/2026").await), "conflict");
        d.folder_delete(a, "Projects/2026/Q1").await.unwrap();
        assert!(names(&d).await.contains(&"Projects/2026".to_string()));
        let again = d.folder_create(a, "Projects/2026", "").await.unwrap();
        assert!(!again.noselect);
        assert_ne!(again.uidvalidity, before.uidvalidity);
        d.folder_create(a, "Projects/2026/Q2", "").await.unwrap();
        d.folder_delete(a, "Projects/2026").await.unwrap();
        d.folder_delete(a, "Projects/2026/Q2").await.unwrap();
        d.folder_delete(a, "Projects/2026").await.unwrap();
        assert!(!names(&d).await.contains(&"Projects/2026".to_string()));
        assert_eq!(code(d.folder_delete(a, "Projects/2026").await), "not_found");
        assert_eq!(code(d.folder_delete(a, "inbox").await), "conflict");

        // APPEND under the quota (1 MiB); flags, expunge, copy and move.
        let inbox = d.folder(a, "INBOX").await.unwrap().unwrap();
        let mut feed = d.mailbox_changes();
        let msg = |s: &str| AppendRequest {
            raw: format!("Subject: {s}\r\n\r\nbody\r\n").into_bytes(),
            ..Default::default()
        };
        let (uv, uid1) = d.append(a, "inbox", msg("one")).await.unwrap();
        assert_eq!((uv, uid1), (inbox.uidvalidity, 1));
        assert_eq!(
            feed.recv().await.unwrap().mailbox_id,
            inbox.id,
            "the change feed names the mailbox"
        );
        let (_, uid2) = d
            .append(
                a,
                "INBOX",
                AppendRequest {
                    flags: 1,
                    ..msg("two")
                },
            )
            .await
            .unwrap();
        let big = AppendRequest {
            raw: vec![b'x'; 1024 * 1024],
            ..Default::default()
        };
        assert_eq!(code(d.append(a, "INBOX", big).await), "over_quota");
        let before = d.folder_snapshot(inbox.id).await.unwrap();
        assert_eq!(before.messages.len(), 2);
        // STORE against the stored state; UNCHANGEDSINCE protects later changes.
        let add = |bits, keywords: &[&str]| FlagChange {
            op: FlagOp::Add,
            bits,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        let out = d
            .store_flags(inbox.id, &[uid1], &add(1 | 8, &["$Label1"]), None)
            .await
            .unwrap();
        let m = out.modseq;
        assert!(out.changed.contains(&uid1));
        assert_eq!(out.messages[0].keywords, "$Label1");
        let again = d
            .store_flags(inbox.id, &[uid1], &add(1, &["$label1"]), None)
            .await
            .unwrap();
        assert!(
            again.changed.is_empty(),
            "already set (keywords ignore case)"
        );
        let refused = d
            .store_flags(inbox.id, &[uid1, uid2], &add(4, &[]), Some(m - 1))
            .await
            .unwrap();
        assert_eq!(
            refused.modified,
            [uid1],
            "uid1 changed after MODSEQ {}",
            m - 1
        );
        let flagged = refused.messages.iter().find(|x| x.uid == uid2).unwrap();
        assert_eq!(flagged.flags & 4, 4);
        d.store_flags(
            inbox.id,
            &[uid2],
            &FlagChange {
                op: FlagOp::Remove,
                bits: 4,
                keywords: vec![],
            },
            None,
        )
        .await
        .unwrap();
        let m = d.folder(a, "INBOX").await.unwrap().unwrap().highestmodseq;
        let since = out.modseq - 1;
        let ch = d.folder_changes(inbox.id, since).await.unwrap().unwrap();
        let uid1_now = ch.changed.iter().find(|x| x.uid == uid1).unwrap();
        assert_eq!((uid1_now.flags, uid1_now.modseq), (9, out.modseq));
        assert_eq!(ch.changed.len(), 2, "uid2 was flagged and unflagged since");
        let (used, _) = d.storage(a).await.unwrap();
        let (dst_uv, pairs) = d
            .copy_messages(a, inbox.id, &[uid1, uid2, 999], "Archive", false)
            .await
            .unwrap();
        assert_eq!(pairs, [(uid1, 1), (uid2, 2)]);
        assert_eq!(
            dst_uv,
            d.folder(a, "Archive").await.unwrap().unwrap().uidvalidity
        );
        assert!(d.storage(a).await.unwrap().0 > used, "a copy takes space");
        d.copy_messages(a, inbox.id, &[uid2], "Trash", true)
            .await
            .unwrap();
        let after = d.folder_changes(inbox.id, m).await.unwrap().unwrap();
        assert_eq!(after.expunged, [uid2], "a move expunges from the source");
        let used = d.storage(a).await.unwrap().0;
        // uid1 has \Deleted (bit 8): EXPUNGE takes it, as stored.
        assert_eq!(d.expunge_deleted(a, inbox.id, None).await.unwrap(), [uid1]);
        assert!(
            d.storage(a).await.unwrap().0 < used,
            "expunge gives space back"
        );
        assert!(
            d.folder_snapshot(inbox.id)
                .await
                .unwrap()
                .messages
                .is_empty()
        );

        // RENAME with inferiors, and of INBOX (moves its messages).
        d.folder_create(a, "Old/Sub", "").await.unwrap();
        d.folder_rename(a, "Old", "New").await.unwrap();
        let now = names(&d).await;
        assert!(
            now.contains(&"New/Sub".to_string()) && !now.contains(&"Old".to_string()),
            "{now:?}"
        );
        d.append(a, "INBOX", msg("three")).await.unwrap();
        d.folder_rename(a, "INBOX", "Saved").await.unwrap();
        let saved = d.folder(a, "Saved").await.unwrap().unwrap();
        assert_eq!(d.folder_snapshot(saved.id).await.unwrap().messages.len(), 1);
        assert!(
            d.folder_snapshot(inbox.id)
                .await
                .unwrap()
                .messages
                .is_empty()
        );

        // P5 roles: one folder per role; M11 lets the administrator forbid the user.
        let all = d
            .set_folder_role(&cli(), "jean@acme.test", "Saved", "sent")
            .await
            .unwrap();
        let sent: Vec<&str> = all
            .iter()
            .filter(|m| m.role == "\\Sent")
            .map(|m| m.folder.as_str())
            .collect();
        assert_eq!(sent, ["Saved"], "the role moved away from Sent");
        let listed = d.folder_roles(&cli(), "jean@acme.test").await.unwrap();
        assert_eq!(listed.len(), all.len());
        let me = Actor::Mailbox("jean@acme.test".into());
        d.set_folder_role(&me, "jean@acme.test", "New", "archive")
            .await
            .unwrap();
        d.update_address(
            &cli(),
            "jean@acme.test",
            &AddressChanges {
                may_change_folders: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            code(
                d.set_folder_role(&me, "jean@acme.test", "New", "trash")
                    .await
            ),
            "forbidden"
        );
        // Seeing the roles is not changing them: the user still sees them, and so does a
        // collaborator with a `use` grant, who cannot change them.
        assert_eq!(
            d.folder_roles(&me, "jean@acme.test").await.unwrap().len(),
            listed.len()
        );
        d.add_user(
            &cli(),
            "viewer@acme.test",
            "Acme",
            postfach_core::model::Role::Collaborator,
            Some(PW),
        )
        .await
        .unwrap();
        d.grant(&cli(), "viewer@acme.test", "acme.test", GrantLevel::Use)
            .await
            .unwrap();
        let viewer = d.actor_for_login("viewer@acme.test").await.unwrap();
        assert!(d.folder_roles(&viewer, "jean@acme.test").await.is_ok());
        assert_eq!(
            code(
                d.set_folder_role(&viewer, "jean@acme.test", "New", "trash")
                    .await
            ),
            "forbidden"
        );
        // Another mailbox user never reaches these folders (nor learns that they exist).
        let other = Actor::Mailbox("someone@else.test".into());
        assert_eq!(
            code(d.folder_roles(&other, "jean@acme.test").await),
            "not_found"
        );
        assert_eq!(
            code(
                d.set_folder_role(&cli(), "jean@acme.test", "New", "inbox")
                    .await
            ),
            "invalid_input"
        );

        // M9: maintenance mode refuses mailbox logins.
        d.update_service(
            &cli(),
            "acme.test",
            &ServiceChanges {
                maintenance: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let e = d
            .mailbox_login("jean@acme.test", PW, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        assert!(e.to_string().contains("maintenance"), "{e}");
    }

    pub async fn validation_errors(t: &TestStore) {
        let Env { dir: d, .. } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        assert_eq!(
            code(d.add_address(&cli(), "bad name@acme.test", PW, None).await),
            "invalid_input"
        );
        assert_eq!(
            code(d.add_address(&cli(), "ok@acme.test", "short", None).await),
            "weak_password"
        );
        assert_eq!(
            code(d.add_address(&cli(), "ok@unknown.test", PW, None).await),
            "not_found"
        );
        assert_eq!(
            code(d.add_domain(&cli(), "Acme", "not a domain").await),
            "invalid_input"
        );
        assert_eq!(
            code(d.add_domain(&cli(), "Acme", "ACME.test").await),
            "already_exists"
        );
        assert_eq!(
            code(d.add_domain(&cli(), "Nobody", "n.test").await),
            "not_found"
        );
        assert_eq!(code(d.create_org(&cli(), "Acme").await), "already_exists");
        assert_eq!(code(d.create_org(&cli(), "  ").await), "invalid_input");
        let idn = d
            .add_domain(&cli(), "Acme", "Bücher.Example")
            .await
            .unwrap();
        assert_eq!(
            (idn.name.as_str(), idn.unicode.as_str()),
            ("xn--bcher-kva.example", "bücher.example")
        );
        // A service needs a domain of its own organization.
        d.create_org(&cli(), "Other").await.unwrap();
        assert_eq!(
            code(
                d.create_service(
                    &cli(),
                    &NewServiceRequest {
                        org: "Other".into(),
                        domain: "bücher.example".into(),
                        offer: "standard".into(),
                        quota: None,
                        name: None,
                        tags: vec![],
                    }
                )
                .await
            ),
            "not_found"
        );
    }

    /// The folder index cache is never told of changes: another process (the CLI, a
    /// second node) changes the folder, and the next snapshot must still be exactly what a
    /// process without a cache reads.
    pub async fn folder_index_follows_changes_from_other_processes(t: &TestStore) {
        use postfach_core::mail::{AppendRequest, FlagChange, FlagOp};
        let Env { dir: d, clock } = env(t);
        service(&d, "Acme", "acme.test", "standard", None).await;
        d.add_address(&cli(), "jean@acme.test", PW, Some(1))
            .await
            .unwrap();
        let a = d
            .mailbox_login("jean@acme.test", PW, None)
            .await
            .unwrap()
            .address_id;
        // A second Directory over the same store is another process: its own cache (and the
        // same clock: everything below happens within one second).
        let other = || {
            let blobs =
                Arc::new(postfach_store::FsBlobStore::open(t.dir.path().join("blobs")).unwrap());
            Directory::new(t.store.clone(), blobs, Policy::default()).with_clock(clock.clone())
        };
        let d2 = other();
        let msg = |s: &str| AppendRequest {
            raw: format!("Subject: {s}\r\n\r\nbody\r\n").into_bytes(),
            ..Default::default()
        };
        let same_as_fresh = |id: i64| {
            let (d, fresh) = (d.clone(), other());
            async move {
                let cached = d.folder_snapshot(id).await.unwrap();
                let read = fresh.folder_snapshot(id).await.unwrap();
                assert_eq!(*cached.messages, *read.messages);
                assert_eq!(cached.mailbox, read.mailbox);
                cached
            }
        };
        let inbox = d.folder(a, "INBOX").await.unwrap().unwrap();
        for s in ["one", "two", "three"] {
            d.append(a, "INBOX", msg(s)).await.unwrap();
        }
        assert_eq!(same_as_fresh(inbox.id).await.messages.len(), 3);
        // Unchanged: served as it was.
        assert_eq!(same_as_fresh(inbox.id).await.messages.len(), 3);

        // Elsewhere: \Seen on 2, 1 expunged, a 4th appended.
        let change = |bits| FlagChange {
            op: FlagOp::Add,
            bits,
            keywords: vec![],
        };
        d2.store_flags(inbox.id, &[2], &change(1), None)
            .await
            .unwrap();
        d2.store_flags(inbox.id, &[1], &change(8), None)
            .await
            .unwrap();
        assert_eq!(d2.expunge_deleted(a, inbox.id, None).await.unwrap(), [1]);
        d2.append(a, "INBOX", msg("four")).await.unwrap();
        let snap = same_as_fresh(inbox.id).await;
        let uids: Vec<(i64, i64)> = snap.messages.iter().map(|m| (m.uid, m.flags)).collect();
        assert_eq!(uids, [(2, 1), (3, 0), (4, 0)]);
        assert_eq!(snap.messages[2].subject, "four");

        // A folder deleted and made again elsewhere (its id may come back): the new one.
        let work = d.folder_create(a, "Work", "").await.unwrap();
        d.append(a, "Work", msg("old")).await.unwrap();
        assert_eq!(same_as_fresh(work.id).await.messages.len(), 1);
        d2.folder_delete(a, "Work").await.unwrap();
        let again = d2.folder_create(a, "Work", "").await.unwrap();
        assert!(again.uidvalidity > work.uidvalidity, "RFC 9051 §2.3.1.1");
        d2.append(a, "Work", msg("new")).await.unwrap();
        let snap = same_as_fresh(again.id).await;
        let subjects: Vec<&str> = snap.messages.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["new"]);
        d2.folder_delete(a, "Work").await.unwrap();
        assert_eq!(code(d.folder_snapshot(again.id).await), "not_found");
    }
}
