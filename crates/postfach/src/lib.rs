//! `postfach`: the server and its admin CLI in one binary (X1).
//!
//! The binary (`main.rs`) only builds the runtime and calls [`cli::run`]. Everything lives in
//! this library so that the fuzz targets (`fuzz/`) can run the real configuration parser and
//! the real server in-process, where libFuzzer sees the code they reach.

pub mod app;
pub mod cli;
mod cli_filters;
pub mod config;
pub mod output;
pub mod serve;
mod tls;

use std::path::PathBuf;

/// Postfach — self-hostable mail hosting: SMTP, IMAP, POP3, filtering and the Manager.
///
/// `postfach serve` runs the server; every other command administers the data directory
/// directly (changes reach a running server at once).
#[derive(clap::Parser, Debug)]
#[command(
    name = "postfach",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Data directory (configuration, database, certificates, message bodies).
    #[arg(
        long,
        global = true,
        env = "POSTFACH_DATA",
        default_value = "./postfach-data"
    )]
    pub data: PathBuf,

    /// Configuration file [default: DATA/postfach.toml].
    #[arg(long, global = true, env = "POSTFACH_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print results (and errors, on stderr) as JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// Act as this Manager user, with their rights, instead of as the operator.
    #[arg(
        long = "as",
        global = true,
        value_name = "LOGIN",
        env = "POSTFACH_ACT_AS"
    )]
    pub act_as: Option<String>,

    #[command(subcommand)]
    pub command: cli::Command,
}
