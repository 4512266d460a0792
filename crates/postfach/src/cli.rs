//! The admin CLI. Each command parses its arguments and calls the service layer
//! ([`postfach_core::Directory`]) with the operator — or, with `--as LOGIN`, that user — as
//! actor; no rule lives here.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use postfach_core::invitations::InvitationView;
use postfach_core::model::{
    AddressView, AliasView, AuditView, DomainStatus, DomainView, GrantLevel, OrgView, Role,
    ServiceView, UserView,
};
use postfach_core::rules::m1_grants_and_roles::KeyScope;
use postfach_core::{Actor, AddressChanges, NewServiceRequest, ServiceChanges};
use serde::Serialize;

use crate::Cli;
use crate::app::{self, Paths};
use crate::output::{self, fields, opt, size, table, yes_no};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (first run: writes the configuration, a self-signed certificate and the
    /// first administrator account, whose password is printed once).
    Serve,
    /// Initialise the data directory like the first `serve` would, without serving.
    Init,
    /// Organizations (customers of the platform).
    #[command(subcommand)]
    Org(OrgCmd),
    /// Manager user accounts, their roles and product grants.
    #[command(subcommand)]
    User(UserCmd),
    /// Domains of an organization.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Mail services (one per domain): offer, quota, maintenance mode.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// E-mail addresses of a mail service.
    #[command(subcommand)]
    Address(AddressCmd),
    /// Aliases of addresses.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// API keys for the JSON admin API.
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Look into an address's mailboxes (operators).
    #[command(subcommand)]
    Mailbox(MailboxCmd),
    /// The outgoing and incoming mail queue (operators).
    #[command(subcommand)]
    Queue(QueueCmd),
    /// The activity log (who changed what, when).
    Audit(AuditArgs),
    /// Autoresponders of an address.
    #[command(subcommand)]
    Autoreply(crate::cli_filters::AutoreplyCmd),
    /// Forwarding of an address to external addresses, with SRS.
    #[command(subcommand)]
    Forward(crate::cli_filters::ForwardCmd),
    /// Allow and block lists of an address, or of a whole mail service for a DOMAIN:
    /// `list allow|block add|del|show (ADDR|DOMAIN) [ENTRY]`.
    List {
        kind: crate::cli_filters::ListKindArg,
        action: crate::cli_filters::ListAction,
        /// An address, or a domain for the service-wide lists.
        target: String,
        /// name@example.com or @example.com.
        entry: Option<String>,
    },
    /// Spam filter, promotions sorting and external-mail marking.
    #[command(subcommand)]
    Spam(crate::cli_filters::SpamCmd),
    /// Sieve scripts of an address or, for a domain, of the mail service.
    #[command(subcommand)]
    Sieve(crate::cli_filters::SieveCmd),
    /// Signatures of an address or of a mail service.
    #[command(subcommand)]
    Signature(crate::cli_filters::SignatureCmd),
    /// Templates of a mail service: delivery defaults for new addresses or in bulk.
    #[command(subcommand)]
    Template(crate::cli_filters::TemplateCmd),
    /// The store itself.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Messages users reported as spam or phishing.
    #[command(subcommand)]
    Reports(crate::cli_filters::ReportsCmd),
    /// What delivery recorded for an address: Sieve errors, loops stopped, blocked senders.
    DeliveryLog {
        address: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Verify the store's invariants: every message body present and intact, UIDs below
    /// UIDNEXT, MODSEQs not above HIGHESTMODSEQ, storage counters, queue bodies. Exits
    /// non-zero when anything is wrong.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum OrgCmd {
    /// Create an organization.
    Add { name: String },
    /// List organizations.
    List,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Legal,
    Admin,
    Collaborator,
    External,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Legal => Role::Legal,
            RoleArg::Admin => Role::Admin,
            RoleArg::Collaborator => Role::Collaborator,
            RoleArg::External => Role::External,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LevelArg {
    Use,
    Manage,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum OnOff {
    On,
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> bool {
        v == OnOff::On
    }
}

#[derive(Args, Debug)]
pub struct PasswordArg {
    /// The password; `-` reads it from standard input; omitted: a strong one is generated
    /// and printed.
    #[arg(long)]
    password: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user to an organization directly, creating the account if needed (platform
    /// operators; an organization's administrators invite).
    Add {
        login: String,
        #[arg(long)]
        org: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Password of a new account; `-` reads standard input; omitted: generated and printed.
        #[arg(long)]
        password: Option<String>,
    },
    /// List the members of an organization.
    List {
        #[arg(long)]
        org: String,
    },
    /// Show one account with its organizations and grants.
    Show { login: String },
    /// Set an account's Manager password.
    Passwd {
        login: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Change a member's role in an organization.
    Role {
        login: String,
        #[arg(long)]
        org: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Grant a collaborator or external member access to a mail service.
    Grant {
        login: String,
        /// Domain of the mail service.
        #[arg(long)]
        service: String,
        #[arg(long, value_enum, default_value = "manage")]
        level: LevelArg,
    },
    /// Revoke a grant.
    Revoke {
        login: String,
        #[arg(long)]
        service: String,
    },
    /// Invite a login into an organization: it joins when its owner accepts. The
    /// invitation is mailed to the login.
    Invite {
        login: String,
        #[arg(long)]
        org: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Pending invitations: your own (with `--as`), or an organization's.
    Invitations {
        #[arg(long)]
        org: Option<String>,
    },
    /// Accept an invitation into ORG (as the invited account, `--as LOGIN`).
    Accept { org: String },
    /// Decline an invitation into ORG (as the invited account, `--as LOGIN`).
    Decline { org: String },
    /// First invitation of a login without an account: choose its password with the token
    /// from the invitation mail, and join.
    Activate {
        #[arg(long)]
        token: String,
        #[command(flatten)]
        password: PasswordArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Add a domain to an organization.
    Add {
        domain: String,
        #[arg(long)]
        org: String,
    },
    /// List domains, with their state (verified, or pending with the TXT record to publish).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Check a pending domain again: its TXT record `postfach-verify=…` verifies it.
    Verify {
        domain: String,
        /// Verify without proof (platform operators only).
        #[arg(long)]
        force: bool,
    },
    /// The DNS records to publish for a domain's mail service (MX, SPF, DKIM, DMARC, …); with
    /// the platform's host name, the platform's own records (the key of its ARC seal).
    Dns { domain: String },
}

#[derive(Subcommand, Debug)]
pub enum FolderCmd {
    /// Create FOLDER (and any missing superiors, `Archive/2026`).
    Add { address: String, folder: String },
    /// Rename FROM to TO, with its inferiors.
    Rename {
        address: String,
        from: String,
        to: String,
    },
    /// Delete FOLDER and its messages (INBOX cannot be deleted).
    Del { address: String, folder: String },
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    /// The messages of one folder (folder, UID, date, from, subject, size).
    List {
        address: String,
        #[arg(long, default_value = "INBOX")]
        folder: String,
    },
    /// The folders of an address.
    Folders { address: String },
    /// Create, rename or delete a folder of an address.
    #[command(subcommand)]
    Folder(FolderCmd),
    /// Make FOLDER play ROLE for the address's mail clients: drafts, sent, trash,
    /// archive, junk, or none to clear it. A role belongs to one folder at a time.
    Role {
        address: String,
        folder: String,
        role: String,
    },
    /// Which folder plays which role.
    Roles { address: String },
    /// Print one message as stored (RFC 5322).
    Show {
        address: String,
        uid: i64,
        #[arg(long, default_value = "INBOX")]
        folder: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Messages waiting for delivery, with their recipients.
    List,
    /// Try an entry again now.
    Retry { id: i64 },
    /// Drop an entry without delivering or bouncing it.
    Remove { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Create the mail service of a domain.
    Add {
        domain: String,
        #[arg(long)]
        org: String,
        /// Offer (starter, standard, pro, or one the operator configured).
        #[arg(long)]
        offer: String,
        /// Address quota [default: the offer's minimum].
        #[arg(long)]
        quota: Option<i64>,
        /// Display name [default: the domain].
        #[arg(long)]
        name: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Change a mail service.
    Set {
        domain: String,
        #[arg(long)]
        offer: Option<String>,
        #[arg(long)]
        quota: Option<i64>,
        /// Maintenance mode: mail is still received, mailbox access is refused.
        #[arg(long, value_enum)]
        maintenance: Option<OnOff>,
        #[arg(long)]
        name: Option<String>,
        /// Replace the tags (repeatable; `--tag ''` clears them).
        #[arg(long = "tag")]
        tags: Option<Vec<String>>,
        /// Operator only: new addresses per 24 h for this service (0 = platform default).
        #[arg(long)]
        new_address_limit: Option<i64>,
    },
    /// List mail services.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Show one mail service.
    Show { domain: String },
}

#[derive(Subcommand, Debug)]
pub enum AddressCmd {
    /// Create an address.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArg,
        /// Storage quota in MiB [default: the offer's].
        #[arg(long)]
        storage_quota: Option<i64>,
    },
    /// Set an address's mail password (IMAP/SMTP).
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Delete an address (with its aliases).
    Del { address: String },
    /// List the addresses of a mail service.
    List {
        domain: String,
        /// Only addresses (or aliases) containing this text.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one address.
    Show { address: String },
    /// Change an address's settings.
    Set {
        address: String,
        /// Storage quota in MiB.
        #[arg(long)]
        storage_quota: Option<i64>,
        /// Forward to this address (repeatable; replaces the list).
        #[arg(long = "forward-to")]
        forward_to: Vec<String>,
        /// Stop forwarding.
        #[arg(long, conflicts_with = "forward_to")]
        no_forward: bool,
        /// Keep a copy of forwarded mail in the mailbox.
        #[arg(long, value_enum)]
        keep_copy: Option<OnOff>,
        /// may the mailbox user change the password?
        #[arg(long, value_enum)]
        allow_password_change: Option<OnOff>,
        /// … the autoresponder?
        #[arg(long, value_enum)]
        allow_autoresponder_change: Option<OnOff>,
        /// … the special folders?
        #[arg(long, value_enum)]
        allow_folder_change: Option<OnOff>,
    },
    /// Renaming is not possible: explains the alternatives.
    Rename { address: String, new_name: String },
    /// Create addresses from a CSV file (header row; columns: local part, password,
    /// forwarding address, 0 = keep / 1 = delete forwarded mail; an export's further columns
    /// are ignored). `--template` prints a file to start from.
    Import {
        /// Print the template (header and two example rows) and do nothing else.
        #[arg(long, conflicts_with_all = ["domain", "file"])]
        template: bool,
        #[arg(required_unless_present = "template")]
        domain: Option<String>,
        #[arg(required_unless_present = "template")]
        file: Option<PathBuf>,
    },
    /// Write the addresses of a mail service as CSV.
    Export {
        domain: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// Add an alias delivering to an address of the same mail service.
    Add {
        alias: String,
        #[arg(long)]
        to: String,
    },
    /// Delete an alias.
    Del { alias: String },
    /// List the aliases of a mail service.
    List { domain: String },
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCmd {
    /// Create an API key acting as LOGIN (printed once), optionally narrowed.
    Add {
        login: String,
        #[arg(long)]
        name: String,
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
        /// Only this mail service (repeatable); such a key cannot act on organizations.
        #[arg(long = "service")]
        services: Vec<String>,
        /// Reading only.
        #[arg(long)]
        read_only: bool,
    },
    /// List the API keys of LOGIN.
    List { login: String },
    /// Revoke an API key.
    Revoke { login: String, id: i64 },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this organization's entries.
    #[arg(long)]
    org: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Entries older than this id (paging).
    #[arg(long)]
    before: Option<i64>,
}

/// Resolves `--password`: given, or `-` (read from stdin); None when not given (then the
/// service layer generates one and the command prints it).
fn password(arg: &PasswordArg) -> Result<Option<String>> {
    match arg.password.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from standard input")?;
            Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()))
        }
        Some(p) => Ok(Some(p.to_string())),
        None => Ok(None),
    }
}

pub(crate) struct Out {
    json: bool,
}

impl Out {
    /// Prints `value` as JSON, or with `human` for people.
    pub(crate) fn show<T: Serialize>(&self, value: &T, human: impl FnOnce(&T)) {
        if self.json {
            output::json(value);
        } else {
            human(value);
        }
    }
}

fn service_fields(s: &ServiceView) {
    fields(&[
        ("domain", s.domain.clone()),
        ("name", s.name.clone()),
        ("organization", s.org.clone()),
        ("offer", s.offer.clone()),
        (
            "addresses",
            format!("{} of {}", s.addresses_used, s.address_quota),
        ),
        (
            "sending limit",
            format!("{} per address per 24 h", s.daily_send_limit),
        ),
        ("catchall allowed", yes_no(s.catchall_allowed)),
        (
            "new addresses",
            format!("at most {} per 24 h", s.new_address_limit),
        ),
        (
            "maintenance",
            if s.maintenance { "on" } else { "off" }.into(),
        ),
        ("tags", s.tags.join(", ")),
        ("created", s.created_at.clone()),
    ]);
}

fn address_fields(a: &AddressView) {
    fields(&[
        ("address", a.address.clone()),
        ("catchall", yes_no(a.is_catchall)),
        ("aliases", a.aliases.join(", ")),
        (
            "forward to",
            if a.forward_to.is_empty() {
                "-".into()
            } else {
                a.forward_to.join(", ")
            },
        ),
        ("keep forwarded copy", yes_no(a.forward_keep_copy)),
        (
            "storage",
            format!(
                "{} of {}",
                size(a.storage_used_bytes),
                size(a.storage_quota_bytes)
            ),
        ),
        ("user may change password", yes_no(a.may_change_password)),
        (
            "user may change autoresponder",
            yes_no(a.may_change_autoresponder),
        ),
        ("user may change folders", yes_no(a.may_change_folders)),
        ("created", a.created_at.clone()),
        ("last login", opt(&a.last_login_at)),
    ]);
}

fn user_fields(u: &UserView) {
    let orgs: Vec<String> = u
        .memberships
        .iter()
        .map(|m| format!("{} ({})", m.org, m.role.as_str()))
        .collect();
    let grants: Vec<String> = u
        .grants
        .iter()
        .map(|g| format!("{} ({})", g.service, g.level.as_str()))
        .collect();
    fields(&[
        ("login", u.login.clone()),
        ("operator", yes_no(u.is_operator)),
        ("organizations", orgs.join(", ")),
        ("grants", grants.join(", ")),
        ("created", u.created_at.clone()),
        ("last login", opt(&u.last_login_at)),
    ]);
}

fn print_generated(out: &Out, what: &str, generated: Option<&str>) {
    if let (Some(p), false) = (generated, out.json) {
        println!("Generated password for {what} (shown only this once): {p}");
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let paths = Paths::new(cli.data, cli.config);
    let out = Out { json: cli.json };
    let command = match cli.command {
        Command::Serve => return crate::serve::run(paths).await.map(|()| ExitCode::SUCCESS),
        Command::Init => {
            let (app, first) = app::init(paths).await?;
            first.report(&app);
            if first.admin.is_none() && !first.config_written {
                println!("{} is already initialised.", app.paths.data.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        other => other,
    };
    let app = app::open(paths).await?;
    let dir = &app.dir;
    let actor = match &cli.act_as {
        Some(login) => dir.actor_for_login(login).await?,
        None => Actor::Cli(std::env::var("USER").unwrap_or_else(|_| "operator".into())),
    };
    let a = &actor;

    match command {
        Command::Serve | Command::Init => unreachable!("handled above"),

        Command::Org(OrgCmd::Add { name }) => {
            let o = dir.create_org(a, &name).await?;
            out.show(&o, |o| println!("Created organization {}", o.name));
        }
        Command::Org(OrgCmd::List) => {
            let list = dir.list_orgs(a).await?;
            out.show(&list, |l: &Vec<OrgView>| {
                table(
                    &["ORGANIZATION", "CREATED"],
                    &l.iter()
                        .map(|o| vec![o.name.clone(), o.created_at.clone()])
                        .collect::<Vec<_>>(),
                )
            });
        }

        Command::User(UserCmd::Add {
            login,
            org,
            role,
            password: pw,
        }) => {
            let pw = password(&PasswordArg { password: pw })?;
            let v = dir
                .add_user(a, &login, &org, role.into(), pw.as_deref())
                .await?;
            out.show(&v, |v| {
                println!(
                    "Added {} to {} as {}",
                    v.user.login,
                    org,
                    Role::from(role).as_str()
                );
                print_generated(&out, &v.user.login, v.generated_password.as_deref());
            });
        }
        Command::User(UserCmd::Invite { login, org, role }) => {
            let i = dir.invite_user(a, &login, &org, role.into()).await?;
            out.show(&i, |i| {
                println!(
                    "Invited {} into {} as {} (until {}); the invitation was mailed to {}",
                    i.login,
                    i.org,
                    i.role.as_str(),
                    i.expires_at,
                    i.login
                )
            });
        }
        Command::User(UserCmd::Invitations { org }) => {
            let list = match &org {
                Some(org) => dir.org_invitations(a, org).await?,
                None => dir.my_invitations(a).await?,
            };
            out.show(&list, |l: &Vec<InvitationView>| {
                let rows = l
                    .iter()
                    .map(|i| {
                        vec![
                            i.org.clone(),
                            i.login.clone(),
                            i.role.as_str().to_string(),
                            i.invited_by.clone(),
                            i.expires_at.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(
                    &["ORGANIZATION", "LOGIN", "ROLE", "INVITED BY", "EXPIRES"],
                    &rows,
                )
            });
        }
        Command::User(UserCmd::Accept { org }) => {
            let u = dir.accept_invitation(a, &org).await?;
            out.show(&u, |u| println!("{} joined {org}", u.login));
        }
        Command::User(UserCmd::Decline { org }) => {
            dir.decline_invitation(a, &org).await?;
            out.show(&serde_json::json!({"declined": org}), |_| {
                println!("Declined the invitation into {org}")
            });
        }
        Command::User(UserCmd::Activate {
            token,
            password: pw,
        }) => {
            let Some(pw) = password(&pw)? else {
                return Err(anyhow!(
                    "--password is needed: the password you choose for the account"
                ));
            };
            let u = dir.activate_invitation(&token, &pw).await?;
            out.show(&u, |u| {
                let orgs: Vec<&str> = u.memberships.iter().map(|m| m.org.as_str()).collect();
                println!(
                    "{} has its password and joined {}",
                    u.login,
                    orgs.join(", ")
                )
            });
        }
        Command::User(UserCmd::List { org }) => {
            let list = dir.list_users(a, &org).await?;
            out.show(&list, |l: &Vec<UserView>| {
                let rows = l
                    .iter()
                    .map(|u| {
                        vec![
                            u.login.clone(),
                            u.memberships
                                .first()
                                .map(|m| m.role.as_str().to_string())
                                .unwrap_or_default(),
                            u.grants
                                .iter()
                                .map(|g| format!("{}:{}", g.service, g.level.as_str()))
                                .collect::<Vec<_>>()
                                .join(" "),
                            opt(&u.last_login_at),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(&["LOGIN", "ROLE", "GRANTS", "LAST LOGIN"], &rows)
            });
        }
        Command::User(UserCmd::Show { login }) => {
            let u = dir.get_user(a, &login).await?;
            out.show(&u, user_fields);
        }
        Command::User(UserCmd::Passwd {
            login,
            password: pw,
        }) => {
            let pw = password(&pw)?;
            let generated = dir.reset_user_password(a, &login, pw.as_deref()).await?;
            let result = serde_json::json!({"login": login, "generated_password": generated});
            out.show(&result, |_| {
                println!("Password of {login} changed");
                print_generated(&out, &login, generated.as_deref());
            });
        }
        Command::User(UserCmd::Role { login, org, role }) => {
            let u = dir.set_role(a, &login, &org, role.into()).await?;
            out.show(&u, |u| {
                println!("{} is now {} of {org}", u.login, Role::from(role).as_str())
            });
        }
        Command::User(UserCmd::Grant {
            login,
            service,
            level,
        }) => {
            let level = match level {
                LevelArg::Use => GrantLevel::Use,
                LevelArg::Manage => GrantLevel::Manage,
            };
            let u = dir.grant(a, &login, &service, level).await?;
            out.show(&u, |u| {
                println!(
                    "{} may now {} mail service {service}",
                    u.login,
                    level.as_str()
                )
            });
        }
        Command::User(UserCmd::Revoke { login, service }) => {
            let u = dir.revoke(a, &login, &service).await?;
            out.show(&u, |u| {
                println!("Revoked the grant of {} on {service}", u.login)
            });
        }

        Command::Domain(DomainCmd::Add { domain, org }) => {
            let d = dir.add_domain(a, &org, &domain).await?;
            out.show(&d, |d| {
                println!("Added domain {} to {}", d.name, d.org);
                print_verification(d);
            });
        }
        Command::Domain(DomainCmd::Verify { domain, force }) => {
            let d = dir.verify_domain(a, &domain, force).await?;
            out.show(&d, |d| println!("{} is verified", d.name));
        }
        Command::Domain(DomainCmd::List { org }) => {
            let list = dir.list_domains(a, org.as_deref()).await?;
            out.show(&list, |l: &Vec<DomainView>| {
                let rows = l
                    .iter()
                    .map(|d| {
                        let name = if d.unicode != d.name {
                            format!("{} ({})", d.name, d.unicode)
                        } else {
                            d.name.clone()
                        };
                        vec![
                            name,
                            d.org.clone(),
                            domain_status(d).into(),
                            yes_no(d.mail_service.is_some()),
                            d.created_at.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(
                    &[
                        "DOMAIN",
                        "ORGANIZATION",
                        "STATUS",
                        "MAIL SERVICE",
                        "CREATED",
                    ],
                    &rows,
                );
                for d in l {
                    print_verification(d);
                }
            });
        }

        Command::Domain(DomainCmd::Dns { domain }) => {
            // The platform's own host name lists the platform's records (its ARC key).
            let host = dir
                .policy()
                .platform
                .hostname
                .trim_end_matches('.')
                .to_string();
            let records = if domain.trim_end_matches('.').eq_ignore_ascii_case(&host) {
                dir.platform_dns(a).await?
            } else {
                dir.domain_dns(a, &domain).await?
            };
            out.show(&records, |l| {
                for r in l {
                    println!("; {}", r.purpose);
                    let value = if r.rtype == "TXT" {
                        zone_txt(&r.value)
                    } else {
                        r.value.clone()
                    };
                    println!("{}. 3600 IN {} {}", r.name, r.rtype, value);
                }
            });
        }

        Command::Mailbox(MailboxCmd::List { address, folder }) => {
            let list = dir.list_messages(a, &address, &folder).await?;
            out.show(&list, |l| {
                let rows = l
                    .iter()
                    .map(|m| {
                        vec![
                            m.folder.clone(),
                            m.uid.to_string(),
                            m.date.clone().unwrap_or_else(|| m.received_at.clone()),
                            m.from.clone(),
                            m.subject.clone(),
                            m.size.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(&["FOLDER", "UID", "DATE", "FROM", "SUBJECT", "SIZE"], &rows)
            });
        }
        Command::Mailbox(MailboxCmd::Folder(cmd)) => {
            use postfach_core::mail::FolderChange;
            let (address, change, done) = match &cmd {
                FolderCmd::Add { address, folder } => (
                    address,
                    FolderChange::Add(folder),
                    format!("Created {folder}"),
                ),
                FolderCmd::Rename { address, from, to } => (
                    address,
                    FolderChange::Rename(from, to),
                    format!("Renamed {from} to {to}"),
                ),
                FolderCmd::Del { address, folder } => (
                    address,
                    FolderChange::Delete(folder),
                    format!("Deleted {folder}"),
                ),
            };
            dir.change_folder(a, address, change).await?;
            out.show(
                &serde_json::json!({"address": address, "done": done}),
                |_| println!("{done} of {address}"),
            );
        }
        Command::Mailbox(MailboxCmd::Folders { address }) => {
            let list = dir.list_mailboxes(a, &address).await?;
            out.show(&list, |l| {
                let rows = l
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.special_use.clone(),
                            m.messages.to_string(),
                            m.uidvalidity.to_string(),
                            m.uidnext.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(
                    &["FOLDER", "ROLE", "MESSAGES", "UIDVALIDITY", "UIDNEXT"],
                    &rows,
                )
            });
        }
        Command::Mailbox(MailboxCmd::Role {
            address,
            folder,
            role,
        }) => {
            let role = if role.eq_ignore_ascii_case("none") {
                String::new()
            } else {
                role
            };
            let list = dir.set_folder_role(a, &address, &folder, &role).await?;
            out.show(&list, |l| folder_roles_table(l));
        }
        Command::Mailbox(MailboxCmd::Roles { address }) => {
            let list = dir.folder_roles(a, &address).await?;
            out.show(&list, |l| folder_roles_table(l));
        }
        Command::Mailbox(MailboxCmd::Show {
            address,
            uid,
            folder,
        }) => {
            let raw = dir.message_raw(a, &address, &folder, uid).await?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&raw)
                .context("writing the message")?;
        }

        Command::Autoreply(cmd) => crate::cli_filters::autoreply(dir, a, &out, cmd).await?,
        Command::Forward(cmd) => crate::cli_filters::forward(dir, a, &out, cmd).await?,
        Command::List {
            kind,
            action,
            target,
            entry,
        } => crate::cli_filters::list(dir, a, &out, kind, action, target, entry).await?,
        Command::Spam(cmd) => crate::cli_filters::spam(dir, a, &out, cmd).await?,
        Command::Sieve(cmd) => crate::cli_filters::sieve(dir, a, &out, cmd).await?,
        Command::Signature(cmd) => crate::cli_filters::signature(dir, a, &out, cmd).await?,
        Command::Reports(cmd) => crate::cli_filters::reports(dir, a, &out, cmd).await?,
        Command::Store(StoreCmd::Check) => {
            let r = dir.store_check(a).await?;
            out.show(&r, |r| {
                println!(
                    "Checked {} addresses, {} folders, {} messages, {} queue entries, {} bodies.",
                    r.addresses, r.mailboxes, r.messages, r.queue_entries, r.blobs_verified
                );
                for p in &r.problems {
                    println!("problem: {p}");
                }
                if r.problems.is_empty() {
                    println!("The store is consistent.");
                }
            });
            if !r.problems.is_empty() {
                anyhow::bail!("the store has {} problem(s)", r.problems.len());
            }
        }
        Command::Template(cmd) => crate::cli_filters::template(dir, a, &out, cmd).await?,
        Command::DeliveryLog { address, limit } => {
            crate::cli_filters::delivery_log(dir, a, &out, &address, limit).await?
        }

        Command::Queue(QueueCmd::List) => {
            let list = dir.queue_list(a).await?;
            out.show(&list, |l| {
                let rows = l
                    .iter()
                    .flat_map(|q| {
                        q.recipients.iter().map(move |r| {
                            vec![
                                q.id.to_string(),
                                q.from.clone(),
                                r.rcpt.clone(),
                                r.status.clone(),
                                q.attempts.to_string(),
                                q.next_attempt_at.clone(),
                                r.last_error.clone(),
                            ]
                        })
                    })
                    .collect::<Vec<_>>();
                table(
                    &[
                        "ID",
                        "FROM",
                        "TO",
                        "STATUS",
                        "ATTEMPTS",
                        "NEXT ATTEMPT",
                        "LAST ERROR",
                    ],
                    &rows,
                )
            });
        }
        Command::Queue(QueueCmd::Retry { id }) => {
            let q = dir.queue_retry(a, id).await?;
            out.show(&q, |q| {
                println!("Queue entry {} will be tried again now", q.id)
            });
        }
        Command::Queue(QueueCmd::Remove { id }) => {
            let q = dir.queue_remove(a, id).await?;
            out.show(&q, |q| {
                println!("Removed queue entry {} from {}", q.id, q.from)
            });
        }

        Command::Service(ServiceCmd::Add {
            domain,
            org,
            offer,
            quota,
            name,
            tags,
        }) => {
            let req = NewServiceRequest {
                org,
                domain,
                offer,
                quota,
                name,
                tags,
            };
            let s = dir.create_service(a, &req).await?;
            out.show(&s, |s| {
                println!(
                    "Created mail service {} ({} offer, {} addresses)",
                    s.domain, s.offer, s.address_quota
                )
            });
        }
        Command::Service(ServiceCmd::Set {
            domain,
            offer,
            quota,
            maintenance,
            name,
            tags,
            new_address_limit,
        }) => {
            let ch = ServiceChanges {
                name,
                tags,
                offer,
                quota,
                maintenance: maintenance.map(bool::from),
                new_address_limit,
            };
            let s = dir.update_service(a, &domain, &ch).await?;
            out.show(&s, service_fields);
        }
        Command::Service(ServiceCmd::List { org }) => {
            let list = dir.list_services(a, org.as_deref()).await?;
            out.show(&list, |l: &Vec<ServiceView>| {
                let rows = l
                    .iter()
                    .map(|s| {
                        vec![
                            s.domain.clone(),
                            s.name.clone(),
                            s.org.clone(),
                            s.offer.clone(),
                            format!("{}/{}", s.addresses_used, s.address_quota),
                            if s.maintenance {
                                "maintenance"
                            } else {
                                "active"
                            }
                            .into(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(
                    &[
                        "DOMAIN",
                        "NAME",
                        "ORGANIZATION",
                        "OFFER",
                        "ADDRESSES",
                        "STATE",
                    ],
                    &rows,
                )
            });
        }
        Command::Service(ServiceCmd::Show { domain }) => {
            let s = dir.get_service(a, &domain).await?;
            out.show(&s, service_fields);
        }

        Command::Address(AddressCmd::Add {
            address,
            password: pw,
            storage_quota,
        }) => {
            let pw = password(&pw)?;
            let v = dir
                .create_address(a, &address, pw.as_deref(), storage_quota)
                .await?;
            let result = serde_json::json!({"address": v.address, "generated_password": v.generated_password});
            out.show(&result, |_| {
                println!("Created {}", v.address.address);
                print_generated(&out, &v.address.address, v.generated_password.as_deref());
            });
        }
        Command::Address(AddressCmd::Passwd {
            address,
            password: pw,
        }) => {
            let pw = password(&pw)?;
            let generated = dir
                .reset_address_password(a, &address, pw.as_deref())
                .await?;
            let result = serde_json::json!({"address": address, "generated_password": generated});
            out.show(&result, |_| {
                println!("Mail password of {address} changed");
                print_generated(&out, &address, generated.as_deref());
            });
        }
        Command::Address(AddressCmd::Del { address }) => {
            let v = dir.delete_address(a, &address).await?;
            out.show(&v, |v| {
                println!("Deleted {}", v.address);
                if !v.aliases.is_empty() {
                    println!("Deleted its aliases: {}", v.aliases.join(", "));
                }
            });
        }
        Command::Address(AddressCmd::List { domain, search }) => {
            let list = dir.list_addresses(a, &domain, search.as_deref()).await?;
            out.show(&list, |l: &Vec<AddressView>| {
                let rows = l
                    .iter()
                    .map(|v| {
                        vec![
                            v.address.clone(),
                            v.aliases.join(" "),
                            v.forward_to.join(" "),
                            format!(
                                "{} / {}",
                                size(v.storage_used_bytes),
                                size(v.storage_quota_bytes)
                            ),
                            opt(&v.last_login_at),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(
                    &["ADDRESS", "ALIASES", "FORWARD TO", "STORAGE", "LAST LOGIN"],
                    &rows,
                )
            });
        }
        Command::Address(AddressCmd::Show { address }) => {
            let v = dir.get_address(a, &address).await?;
            out.show(&v, address_fields);
        }
        Command::Address(AddressCmd::Set {
            address,
            storage_quota,
            forward_to,
            no_forward,
            keep_copy,
            allow_password_change,
            allow_autoresponder_change,
            allow_folder_change,
        }) => {
            let ch = AddressChanges {
                storage_quota_mib: storage_quota,
                forward_to: if no_forward {
                    Some(Vec::new())
                } else {
                    (!forward_to.is_empty()).then_some(forward_to)
                },
                forward_keep_copy: keep_copy.map(bool::from),
                may_change_password: allow_password_change.map(bool::from),
                may_change_autoresponder: allow_autoresponder_change.map(bool::from),
                may_change_folders: allow_folder_change.map(bool::from),
            };
            let v = dir.update_address(a, &address, &ch).await?;
            out.show(&v, address_fields);
        }
        Command::Address(AddressCmd::Rename { address, new_name }) => {
            dir.rename_address(a, &address, &new_name).await?;
        }
        Command::Address(AddressCmd::Import {
            template,
            domain,
            file,
        }) => {
            if template {
                print!("{}", postfach_core::csvio::template());
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(domain), Some(file)) = (domain, file) else {
                return Err(anyhow!(
                    "address import needs DOMAIN and FILE (or --template)"
                ));
            };
            return import(dir, a, &out, &domain, &file).await;
        }
        Command::Address(AddressCmd::Export {
            domain,
            output: path,
        }) => {
            let csv = dir.export_csv(a, &domain).await?;
            match path {
                Some(p) => {
                    std::fs::write(&p, csv).with_context(|| format!("writing {}", p.display()))?;
                    if !out.json {
                        eprintln!("Wrote {}", p.display());
                    }
                }
                None => print!("{csv}"),
            }
        }

        Command::Alias(AliasCmd::Add { alias, to }) => {
            let v = dir.add_alias(a, &alias, &to).await?;
            out.show(&v, |v| println!("Created alias {} → {}", v.alias, v.target));
        }
        Command::Alias(AliasCmd::Del { alias }) => {
            let v = dir.delete_alias(a, &alias).await?;
            out.show(&v, |v| {
                println!("Deleted alias {} (was → {})", v.alias, v.target)
            });
        }
        Command::Alias(AliasCmd::List { domain }) => {
            let list = dir.list_aliases(a, &domain).await?;
            out.show(&list, |l: &Vec<AliasView>| {
                table(
                    &["ALIAS", "DELIVERS TO", "CREATED"],
                    &l.iter()
                        .map(|v| vec![v.alias.clone(), v.target.clone(), v.created_at.clone()])
                        .collect::<Vec<_>>(),
                )
            });
        }

        Command::Apikey(ApikeyCmd::Add {
            login,
            name,
            org,
            services,
            read_only,
        }) => {
            let scope = KeyScope {
                org,
                services,
                read_only,
            };
            let t = dir.create_api_key(a, &login, &name, &scope).await?;
            out.show(&t, |t| {
                println!("API key for {} (shown only this once; send it as `Authorization: Bearer KEY`):", t.user);
                println!("{}", t.token);
            });
        }
        Command::Apikey(ApikeyCmd::List { login }) => {
            let list = dir.list_api_keys(a, &login).await?;
            out.show(&list, |l| {
                table(
                    &["ID", "NAME", "SCOPE", "CREATED", "LAST USED"],
                    &l.iter()
                        .map(|k| {
                            vec![
                                k.id.to_string(),
                                k.name.clone(),
                                serde_json::to_string(&k.scope).unwrap_or_default(),
                                k.created_at.clone(),
                                opt(&k.last_used_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                )
            });
        }
        Command::Apikey(ApikeyCmd::Revoke { login, id }) => {
            let k = dir.revoke_api_key(a, &login, id).await?;
            out.show(&k, |k| {
                println!("Revoked API key {} ({}) of {}", k.id, k.name, k.user)
            });
        }

        Command::Audit(args) => {
            let list = dir
                .list_audit(a, args.org.as_deref(), args.limit, args.before)
                .await?;
            out.show(&list, |l: &Vec<AuditView>| {
                let rows = l
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.at.clone(),
                            e.actor.clone(),
                            e.action.clone(),
                            e.target.clone(),
                            e.detail.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table(&["ID", "WHEN", "WHO", "WHAT", "TARGET", "DETAIL"], &rows)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A TXT value in zone-file syntax: quoted, split into strings of at most 255 octets
/// (RFC 1035 §3.3.14; long DKIM keys need several).
fn zone_txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// M6 import with a progress bar on a terminal; exit status 1 if any row was refused.
async fn import(
    dir: &postfach_core::Directory,
    actor: &Actor,
    out: &Out,
    domain: &str,
    file: &PathBuf,
) -> Result<ExitCode> {
    let data = std::fs::read(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() || out.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}").expect("valid template"),
    );
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report = dir.import_csv(actor, domain, &data, &mut progress).await?;
    bar.finish_and_clear();
    out.show(&report, |r| {
        let rows = r
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.line.to_string(),
                    row.local_part.clone(),
                    row.status.clone(),
                    row.message.clone().unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>();
        table(&["LINE", "LOCAL PART", "RESULT", "REASON"], &rows);
        println!("{} created, {} refused", r.created, r.refused);
    });
    if report.refused > 0 {
        output::error(
            out.json,
            "rows_refused",
            &format!(
                "{} of {} rows refused (see the report)",
                report.refused,
                report.rows.len()
            ),
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn folder_roles_table(list: &[postfach_core::model::FolderRoleView]) {
    let rows = list
        .iter()
        .map(|f| vec![f.folder.clone(), f.role.clone()])
        .collect::<Vec<_>>();
    table(&["FOLDER", "ROLE"], &rows)
}

fn domain_status(d: &DomainView) -> &'static str {
    match d.status {
        DomainStatus::Verified => "verified",
        DomainStatus::Pending => "pending",
    }
}

/// For a pending domain: the record that proves control, and what to run then (M2).
fn print_verification(d: &DomainView) {
    if let Some(r) = &d.verification {
        println!(
            "{} is pending: publish  {}. IN TXT \"{}\"  then run `postfach domain verify {}`",
            d.name, r.name, r.value, d.name
        );
    }
}
