//! CLI commands of the delivery pipeline: autoresponders (F10), forwarding (F11),
//! allow/block lists (F7), spam and promotions switches (F5, F6, F8), Sieve scripts (F9),
//! signatures (M8) and the delivery log. Parsing only; the rules are in
//! `postfach_core::ops::filters`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use postfach_core::filters::{FilterView, ListKind, ListView};
use postfach_core::mail::settings::{Autoreply, BlockAction, Template};
use postfach_core::reports::ReportKind;
use postfach_core::{Actor, AddressChanges, Directory};

use crate::cli::Out;
use crate::output::{fields, table, yes_no};

#[derive(Subcommand, Debug)]
pub enum AutoreplyCmd {
    /// Save an autoresponder (replacing one of the same name).
    Add {
        address: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        message: String,
        /// Default: "Auto: " and the subject of the message answered.
        #[arg(long, default_value = "")]
        subject: String,
        /// RFC 3339, e.g. 2026-12-24T08:00:00+01:00 (its offset is the time zone of --weekdays).
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        /// Only on these days: mon,tue,wed,thu,fri,sat,sun.
        #[arg(long, value_delimiter = ',')]
        weekdays: Vec<String>,
        /// Send from this alias of the address instead.
        #[arg(long)]
        from: Option<String>,
        /// Never answer these senders: a@x.org or @x.org, comma-separated.
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<String>,
        /// Make it the active one (deactivates any other).
        #[arg(long)]
        activate: bool,
    },
    /// The saved autoresponders of an address.
    List {
        address: String,
    },
    /// Forget whom the autoresponder answered (everyone gets the next reply again).
    Reset {
        address: String,
    },
    Activate {
        address: String,
        name: String,
    },
    Deactivate {
        address: String,
        name: String,
    },
    Del {
        address: String,
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ForwardCmd {
    /// Forward an address's mail to one or more external addresses.
    Set {
        address: String,
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Keep a copy in the mailbox.
        #[arg(long, conflicts_with = "delete", required_unless_present = "delete")]
        keep: bool,
        /// Do not keep a copy.
        #[arg(long)]
        delete: bool,
    },
    /// Stop forwarding.
    Clear { address: String },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ListKindArg {
    Allow,
    Block,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ListAction {
    Add,
    Del,
    Show,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    fn on(self) -> bool {
        self == OnOff::On
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BlockActionArg {
    Spam,
    Refuse,
}

#[derive(Subcommand, Debug)]
pub enum SpamCmd {
    /// Switch an address's spam filter (and its promotions/social sorting).
    Set {
        address: String,
        state: OnOff,
        #[arg(long)]
        promotions: Option<OnOff>,
    },
    /// An address's filter switches.
    Show { address: String },
    /// Report a message as spam, phishing or not spam ("ham"): trains the classifier, moves
    /// it into (or out of) Spam, and records spam/phishing for `postfach reports list`.
    Report {
        address: String,
        folder: String,
        uid: i64,
        /// spam, phishing or ham (not spam).
        #[arg(long, value_parser = report_kind)]
        kind: ReportKind,
    },
    /// Service-wide: what a block-list hit does, external-mail marking, spam threshold.
    Service {
        domain: String,
        #[arg(long)]
        block_action: Option<BlockActionArg>,
        #[arg(long)]
        external_marking: Option<OnOff>,
        #[arg(long)]
        threshold: Option<f64>,
        /// keep winmail.dat beside the files unpacked from it.
        #[arg(long)]
        tnef_keep_original: Option<OnOff>,
    },
}

/// `spam`, `phishing` or `ham` (not spam).
fn report_kind(s: &str) -> std::result::Result<ReportKind, String> {
    ReportKind::parse(s).map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
pub enum ReportsCmd {
    /// Messages users reported as spam or phishing, newest first.
    List {
        /// spam or phishing.
        #[arg(long, value_parser = report_kind)]
        kind: Option<ReportKind>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum TemplateCmd {
    /// Save a template of a mail service (same name: replaced).
    Put {
        domain: String,
        name: String,
        #[arg(long)]
        spam: Option<OnOff>,
        #[arg(long)]
        promotions: Option<OnOff>,
        #[arg(long)]
        signature: Option<String>,
        /// An autoresponder (named like the template) with this message.
        #[arg(long)]
        autoreply_message: Option<String>,
        #[arg(long, requires = "autoreply_message")]
        autoreply_subject: Option<String>,
        /// The autoresponder starts active.
        #[arg(long, requires = "autoreply_message")]
        autoreply_active: bool,
        /// Apply to every new address of the service.
        #[arg(long)]
        default: bool,
    },
    List {
        domain: String,
    },
    Del {
        domain: String,
        name: String,
    },
    /// Apply a template to the named addresses, or with --all to every address.
    Apply {
        domain: String,
        name: String,
        addresses: Vec<String>,
        #[arg(long, conflicts_with = "addresses")]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SieveCmd {
    /// Store a script (TARGET: an address, or a domain for the service-wide script).
    Put {
        target: String,
        name: String,
        /// The script file (`-` for standard input).
        file: PathBuf,
        #[arg(long)]
        activate: bool,
    },
    /// Make a script the active one.
    Activate {
        target: String,
        name: String,
    },
    /// No script runs.
    Deactivate {
        target: String,
    },
    List {
        target: String,
    },
    /// Print a script.
    Get {
        target: String,
        name: String,
    },
    Del {
        target: String,
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SignatureCmd {
    /// Set the signature of an address, or the service-wide one for a domain.
    Set {
        target: String,
        text: String,
    },
    Show {
        target: String,
    },
}

fn list_human(v: &ListView) {
    fields(&[
        ("target", v.target.clone()),
        ("allow", v.allow.join(", ")),
        ("block", v.block.join(", ")),
    ]);
    for w in &v.warnings {
        println!("warning: {w}");
    }
}

fn filter_fields(v: &FilterView) {
    let b = &v.bayes;
    fields(&[
        ("address", v.address.clone()),
        ("spam filter", yes_no(v.spam)),
        ("promotions/social", yes_no(v.promotions)),
        (
            "bayes trained",
            format!(
                "{} spam, {} ham here; {} spam, {} ham platform-wide (needs {} of each)",
                b.spam_learned,
                b.ham_learned,
                b.global_spam_learned,
                b.global_ham_learned,
                b.min_learns
            ),
        ),
    ])
}

fn read_file(path: &PathBuf) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub async fn autoreply(dir: &Directory, a: &Actor, out: &Out, cmd: AutoreplyCmd) -> Result<()> {
    match cmd {
        AutoreplyCmd::Add {
            address,
            name,
            message,
            subject,
            start,
            end,
            weekdays,
            from,
            exclude,
            activate,
        } => {
            let v = dir
                .autoreply_put(
                    a,
                    &address,
                    &Autoreply {
                        name,
                        subject,
                        message: message.replace("\\n", "\n"),
                        start,
                        end,
                        weekdays,
                        from,
                        exclude,
                        active: activate,
                    },
                )
                .await?;
            out.show(&v, |v| {
                println!(
                    "Saved autoresponder {:?} of {address}{}",
                    v.autoreply.name,
                    if v.autoreply.active { " (active)" } else { "" }
                )
            });
        }
        AutoreplyCmd::List { address } => {
            let list = dir.autoreply_list(a, &address).await?;
            out.show(&list, |l| {
                let rows: Vec<Vec<String>> = l
                    .iter()
                    .map(|v| {
                        let x = &v.autoreply;
                        vec![
                            x.name.clone(),
                            yes_no(x.active),
                            x.start.clone().unwrap_or_else(|| "-".into()),
                            x.end.clone().unwrap_or_else(|| "-".into()),
                            if x.weekdays.is_empty() {
                                "every day".into()
                            } else {
                                x.weekdays.join(",")
                            },
                            x.from.clone().unwrap_or_else(|| "-".into()),
                            x.exclude.join(","),
                        ]
                    })
                    .collect();
                table(
                    &["NAME", "ACTIVE", "START", "END", "DAYS", "FROM", "EXCLUDED"],
                    &rows,
                )
            });
        }
        AutoreplyCmd::Reset { address } => {
            let n = dir.autoreply_reset(a, &address).await?;
            out.show(&serde_json::json!({"forgotten": n}), |_| {
                println!(
                    "Forgot {n} sender(s): the autoresponder of {address} answers everyone again"
                )
            });
        }
        AutoreplyCmd::Activate { address, name } => {
            dir.autoreply_set_active(a, &address, &name, true).await?;
            out.show(&serde_json::json!({"name": name, "active": true}), |_| {
                println!("Activated {name:?} on {address}")
            });
        }
        AutoreplyCmd::Deactivate { address, name } => {
            dir.autoreply_set_active(a, &address, &name, false).await?;
            out.show(&serde_json::json!({"name": name, "active": false}), |_| {
                println!("Deactivated {name:?} on {address}")
            });
        }
        AutoreplyCmd::Del { address, name } => {
            dir.autoreply_delete(a, &address, &name).await?;
            out.show(&serde_json::json!({"deleted": name}), |_| {
                println!("Deleted {name:?} of {address}")
            });
        }
    }
    Ok(())
}

pub async fn forward(dir: &Directory, a: &Actor, out: &Out, cmd: ForwardCmd) -> Result<()> {
    let (address, ch) = match cmd {
        ForwardCmd::Set {
            address,
            to,
            keep,
            delete,
        } => (
            address,
            AddressChanges {
                forward_to: Some(to),
                forward_keep_copy: Some(keep && !delete),
                ..Default::default()
            },
        ),
        ForwardCmd::Clear { address } => (
            address,
            AddressChanges {
                forward_to: Some(Vec::new()),
                forward_keep_copy: Some(true),
                ..Default::default()
            },
        ),
    };
    let v = dir.update_address(a, &address, &ch).await?;
    out.show(&v, |v| {
        if v.forward_to.is_empty() {
            println!("{} is not forwarded", v.address)
        } else {
            println!(
                "{} forwards to {} ({} a copy)",
                v.address,
                v.forward_to.join(", "),
                if v.forward_keep_copy {
                    "keeping"
                } else {
                    "without"
                }
            )
        }
    });
    Ok(())
}

pub async fn list(
    dir: &Directory,
    a: &Actor,
    out: &Out,
    kind: ListKindArg,
    action: ListAction,
    target: String,
    entry: Option<String>,
) -> Result<()> {
    let kind = match kind {
        ListKindArg::Allow => ListKind::Allow,
        ListKindArg::Block => ListKind::Block,
    };
    let v = match action {
        ListAction::Show => dir.list_show(a, &target).await?,
        ListAction::Add | ListAction::Del => {
            let entry = entry.ok_or_else(|| {
                anyhow::anyhow!("give the entry to add or delete: name@example.com or @example.com")
            })?;
            dir.list_change(a, &target, kind, &entry, matches!(action, ListAction::Add))
                .await?
        }
    };
    out.show(&v, list_human);
    Ok(())
}

pub async fn spam(dir: &Directory, a: &Actor, out: &Out, cmd: SpamCmd) -> Result<()> {
    match cmd {
        SpamCmd::Set {
            address,
            state,
            promotions,
        } => {
            let v = dir
                .filters_set(a, &address, Some(state.on()), promotions.map(OnOff::on))
                .await?;
            out.show(&v, filter_fields);
        }
        SpamCmd::Show { address } => {
            let v = dir.filters_get(a, &address).await?;
            out.show(&v, filter_fields);
        }
        SpamCmd::Report {
            address,
            folder,
            uid,
            kind,
        } => {
            let v = dir.report_message(a, &address, &folder, uid, kind).await?;
            out.show(&v, |v| {
                fields(&[
                    ("trained", yes_no(v.trained)),
                    (
                        "moved to",
                        match (&v.moved_to, v.uid) {
                            (Some(f), Some(u)) => format!("{f} (UID {u})"),
                            _ => "-".into(),
                        },
                    ),
                    (
                        "report",
                        v.report
                            .as_ref()
                            .map(|r| format!("#{} ({})", r.id, r.kind))
                            .unwrap_or_else(|| "-".into()),
                    ),
                ])
            });
        }
        SpamCmd::Service {
            domain,
            block_action,
            external_marking,
            threshold,
            tnef_keep_original,
        } => {
            let v = if block_action.is_none()
                && external_marking.is_none()
                && threshold.is_none()
                && tnef_keep_original.is_none()
            {
                dir.service_filters_get(a, &domain).await?
            } else {
                dir.service_filters_set(
                    a,
                    &domain,
                    block_action.map(|b| match b {
                        BlockActionArg::Spam => BlockAction::Spam,
                        BlockActionArg::Refuse => BlockAction::Refuse,
                    }),
                    external_marking.map(OnOff::on),
                    threshold,
                    tnef_keep_original.map(OnOff::on),
                )
                .await?
            };
            out.show(&v, |v| {
                fields(&[
                    ("domain", v.domain.clone()),
                    (
                        "block action",
                        match v.block_action {
                            BlockAction::Spam => "file into Spam".into(),
                            BlockAction::Refuse => "refuse (550)".into(),
                        },
                    ),
                    ("external marking", yes_no(v.external_marking)),
                    ("spam threshold", format!("{:.1}", v.spam_threshold)),
                    ("winmail.dat kept", yes_no(v.tnef_keep_original)),
                ])
            });
        }
    }
    Ok(())
}

pub async fn sieve(dir: &Directory, a: &Actor, out: &Out, cmd: SieveCmd) -> Result<()> {
    match cmd {
        SieveCmd::Put {
            target,
            name,
            file,
            activate,
        } => {
            let source = read_file(&file)?;
            let v = dir.sieve_put(a, &target, &name, &source, activate).await?;
            out.show(&v, |v| {
                println!(
                    "Stored Sieve script {:?} of {target}{}",
                    v.name,
                    if v.active { " (active)" } else { "" }
                )
            });
        }
        SieveCmd::Activate { target, name } => {
            dir.sieve_activate(a, &target, Some(&name)).await?;
            out.show(&serde_json::json!({"active": name}), |_| {
                println!("{name:?} is the active script of {target}")
            });
        }
        SieveCmd::Deactivate { target } => {
            dir.sieve_activate(a, &target, None).await?;
            out.show(&serde_json::json!({"active": null}), |_| {
                println!("No Sieve script runs for {target}")
            });
        }
        SieveCmd::List { target } => {
            let list = dir.sieve_list(a, &target).await?;
            out.show(&list, |l| {
                let rows: Vec<Vec<String>> = l
                    .iter()
                    .map(|s| vec![s.name.clone(), yes_no(s.active), s.size.to_string()])
                    .collect();
                table(&["NAME", "ACTIVE", "BYTES"], &rows)
            });
        }
        SieveCmd::Get { target, name } => {
            let s = dir.sieve_get(a, &target, &name).await?;
            out.show(&s, |s| print!("{}", s.source));
        }
        SieveCmd::Del { target, name } => {
            dir.sieve_delete(a, &target, &name).await?;
            out.show(&serde_json::json!({"deleted": name}), |_| {
                println!("Deleted Sieve script {name:?} of {target}")
            });
        }
    }
    Ok(())
}

pub async fn signature(dir: &Directory, a: &Actor, out: &Out, cmd: SignatureCmd) -> Result<()> {
    match cmd {
        SignatureCmd::Set { target, text } => {
            dir.signature_set(a, &target, &text.replace("\\n", "\n"))
                .await?;
            out.show(&serde_json::json!({"target": target}), |_| {
                println!("Signature of {target} saved")
            });
        }
        SignatureCmd::Show { target } => {
            let s = dir.signature_get(a, &target).await?;
            out.show(&s, |s| println!("{}", s.text));
        }
    }
    Ok(())
}

pub async fn delivery_log(
    dir: &Directory,
    a: &Actor,
    out: &Out,
    address: &str,
    limit: i64,
) -> Result<()> {
    let list = dir.delivery_log(a, address, limit).await?;
    out.show(&list, |l| {
        let rows: Vec<Vec<String>> = l
            .iter()
            .map(|e| vec![e.at.clone(), e.kind.clone(), e.detail.clone()])
            .collect();
        table(&["AT", "KIND", "DETAIL"], &rows)
    });
    Ok(())
}

pub async fn reports(dir: &Directory, a: &Actor, out: &Out, cmd: ReportsCmd) -> Result<()> {
    match cmd {
        ReportsCmd::List { kind, limit } => {
            let list = dir.reports_list(a, kind, limit).await?;
            out.show(&list, |l| {
                let rows: Vec<Vec<String>> = l
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.reported_at.clone(),
                            r.kind.clone(),
                            r.address.clone(),
                            r.from.clone(),
                            r.subject.clone(),
                        ]
                    })
                    .collect();
                table(&["ID", "AT", "KIND", "ADDRESS", "FROM", "SUBJECT"], &rows)
            });
        }
    }
    Ok(())
}

pub async fn template(dir: &Directory, a: &Actor, out: &Out, cmd: TemplateCmd) -> Result<()> {
    match cmd {
        TemplateCmd::Put {
            domain,
            name,
            spam,
            promotions,
            signature,
            autoreply_message,
            autoreply_subject,
            autoreply_active,
            default,
        } => {
            let autoreply = autoreply_message.map(|message| Autoreply {
                name: name.clone(),
                subject: autoreply_subject.unwrap_or_default(),
                message,
                active: autoreply_active,
                ..Default::default()
            });
            let t = Template {
                name,
                spam: spam.map(OnOff::on),
                promotions: promotions.map(OnOff::on),
                signature,
                autoreply,
                default,
            };
            let t = dir.template_put(a, &domain, &t).await?;
            out.show(&t, |t| template_table(std::slice::from_ref(t)));
        }
        TemplateCmd::List { domain } => {
            let list = dir.template_list(a, &domain).await?;
            out.show(&list, |l| template_table(l));
        }
        TemplateCmd::Del { domain, name } => {
            dir.template_delete(a, &domain, &name).await?;
            out.show(&serde_json::json!({"deleted": name}), |_| {
                println!("Deleted template {name:?} of {domain}")
            });
        }
        TemplateCmd::Apply {
            domain,
            name,
            addresses,
            all,
        } => {
            if addresses.is_empty() && !all {
                anyhow::bail!("name the addresses to apply {name} to, or use --all");
            }
            let r = dir
                .template_apply(a, &domain, &name, (!all).then_some(addresses.as_slice()))
                .await?;
            out.show(&r, |r| {
                println!(
                    "Applied {} to {} address(es): {}",
                    r.template,
                    r.applied.len(),
                    r.applied.join(", ")
                )
            });
        }
    }
    Ok(())
}

fn template_table(list: &[Template]) {
    let opt = |v: Option<bool>| v.map(yes_no).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                yes_no(t.default),
                opt(t.spam),
                opt(t.promotions),
                yes_no(t.signature.is_some()),
                t.autoreply
                    .as_ref()
                    .map(|r| {
                        format!(
                            "{} ({})",
                            r.name,
                            if r.active { "active" } else { "inactive" }
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "DEFAULT",
            "SPAM",
            "PROMOTIONS",
            "SIGNATURE",
            "AUTOREPLY",
        ],
        &rows,
    )
}
