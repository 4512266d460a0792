//! Opening a data directory: configuration, TLS material, store and service layer. `init`
//! (used by `postfach init` and `postfach serve`) also performs the first-run setup.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use postfach_core::Directory;
use postfach_store::FsBlobStore;

use crate::config::{self, Config};

pub struct Paths {
    pub data: PathBuf,
    pub config: PathBuf,
}

impl Paths {
    pub fn new(data: PathBuf, config: Option<PathBuf>) -> Self {
        let config = config.unwrap_or_else(|| data.join("postfach.toml"));
        Paths { data, config }
    }
}

pub struct App {
    pub config: Config,
    pub paths: Paths,
    pub dir: Directory,
}

impl App {
    /// This node's stable identity (queue claims survive restarts through it): a random id
    /// written to DATA/node-id on first use.
    pub fn node_id(&self) -> Result<String> {
        let path = self.paths.data.join("node-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            let id = id.trim();
            if !id.is_empty() {
                return Ok(id.to_string());
            }
        }
        let id = format!(
            "{}-{}",
            self.config.server.hostname,
            postfach_core::secret::random_hex(6)
        );
        std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
        Ok(id)
    }
}

/// What the first-run setup created, to tell the operator once.
#[derive(Default)]
pub struct FirstRun {
    pub config_written: bool,
    pub certificate_created: bool,
    /// (login, password) of the first operator account.
    pub admin: Option<(String, String)>,
}

async fn open_with(config: Config, paths: Paths) -> Result<App> {
    let store = postfach_store::open(&config.store.url, &paths.data)
        .await
        .map_err(|e| anyhow!("store.url: {e}"))?;
    let blobs = FsBlobStore::open(config.resolve(&paths.data, &config.store.blobs))
        .map_err(|e| anyhow!("store.blobs: {e}"))?;
    let mut dir = Directory::new(store, std::sync::Arc::new(blobs), config.policy());
    // M2: `domain verify` asks DNS through the configured resolvers.
    let probe = postfach_smtp::domain_probe(&config.dns).map_err(|e| anyhow!(e))?;
    dir = dir.with_domain_dns(std::sync::Arc::new(probe));
    // Tests only: a clock they can move (see `OffsetFileClock`).
    if let Some(file) = std::env::var_os("POSTFACH_TESTING_CLOCK_FILE") {
        dir = dir.with_clock(std::sync::Arc::new(postfach_core::OffsetFileClock(
            file.into(),
        )));
    }
    Ok(App { config, paths, dir })
}

/// Opens an initialised data directory (the admin commands).
pub async fn open(paths: Paths) -> Result<App> {
    if !paths.config.exists() {
        return Err(anyhow!(
            "no configuration at {}: run `postfach init --data {}` (or `postfach serve`) first",
            paths.config.display(),
            paths.data.display()
        ));
    }
    let config = config::load(&paths.config).map_err(|e| anyhow!(e))?;
    open_with(config, paths).await
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// First run: writes the commented configuration, a self-signed certificate and the first
/// operator account where they do not exist yet; later runs reuse them.
pub async fn init(paths: Paths) -> Result<(App, FirstRun)> {
    let mut first = FirstRun::default();
    if !paths.config.exists() {
        create_private_dir(&paths.data)?;
        if let Some(dir) = paths.config.parent() {
            create_private_dir(dir)?;
        }
        let hostname = Config::default().server.hostname;
        std::fs::write(&paths.config, config::default_file(&hostname))
            .with_context(|| format!("writing {}", paths.config.display()))?;
        first.config_written = true;
    }
    let config = config::load(&paths.config).map_err(|e| anyhow!(e))?;
    create_private_dir(&paths.data)?;
    first.certificate_created = crate::tls::ensure_certificate(&config, &paths.data)?;
    let app = open_with(config, paths).await?;
    let admin_login = format!("admin@{}", app.config.server.hostname);
    first.admin = app
        .dir
        .bootstrap_operator(&admin_login)
        .await
        .map_err(|e| anyhow!("creating the first administrator {admin_login}: {e}"))?;
    Ok((app, first))
}

impl FirstRun {
    /// Tells the operator what was set up; the password appears only here, only once.
    pub fn report(&self, app: &App) {
        if self.config_written {
            println!("Wrote the configuration {}", app.paths.config.display());
        }
        if self.certificate_created {
            println!(
                "Created a self-signed TLS certificate for {} in {}",
                app.config.server.hostname,
                app.config
                    .resolve(&app.paths.data, &app.config.tls.cert)
                    .display()
            );
        }
        if let Some((login, password)) = &self.admin {
            println!();
            println!("First administrator account (the password is shown only this once):");
            println!("  login:    {login}");
            println!("  password: {password}");
            println!();
        }
    }
}
