//! TLS material. On first run, when neither the certificate nor the key exists, a self-signed
//! certificate for the configured hostname is created (X1: "works with no configuration");
//! a deployment points `[tls]` at real files (e.g. from an ACME client).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Creates a self-signed certificate (hostname, `localhost`, 127.0.0.1, ::1) if neither file
/// exists. Returns whether it did.
pub fn ensure_certificate(cfg: &Config, data: &Path) -> Result<bool> {
    let cert = cfg.resolve(data, &cfg.tls.cert);
    let key = cfg.resolve(data, &cfg.tls.key);
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (false, false) => {}
        (true, false) => bail!(
            "tls.key: {} does not exist (but tls.cert does)",
            key.display()
        ),
        (false, true) => bail!(
            "tls.cert: {} does not exist (but tls.key does)",
            cert.display()
        ),
    }
    let mut names = vec![cfg.server.hostname.clone()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    // Named after the host (rcgen's default subject is "rcgen self signed cert"): what a
    // mail client shows when it asks the user to trust it.
    let signing_key = rcgen::KeyPair::generate().context("generating a TLS key")?;
    let mut params =
        rcgen::CertificateParams::new(names).context("generating a self-signed certificate")?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cfg.server.hostname.clone());
    dn.push(rcgen::DnType::OrganizationName, "Postfach (self-signed)");
    params.distinguished_name = dn;
    let certificate = params
        .self_signed(&signing_key)
        .context("generating a self-signed certificate")?;
    for (path, pem, private) in [
        (&cert, certificate.pem(), false),
        (&key, signing_key.serialize_pem(), true),
    ] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let _ = private;
        let mut f = opts
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
    }
    Ok(true)
}

/// Loads certificate and key into a rustls server configuration; errors name the option.
pub fn server_config(cfg: &Config, data: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let cert_path = cfg.resolve(data, &cfg.tls.cert);
    let key_path = cfg.resolve(data, &cfg.tls.key);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("tls.cert: cannot read {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls.cert: {} is not a PEM certificate", cert_path.display()))?;
    if certs.is_empty() {
        bail!("tls.cert: {} holds no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("tls.key: {} is not a PEM private key", key_path.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("tls.cert/tls.key: the key does not match the certificate")?;
    Ok(Arc::new(config))
}
