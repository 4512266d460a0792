//! `postfach`: the server and its admin CLI in one binary (X1).

mod app;
mod cli;
mod cli_filters;
mod config;
mod output;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Postfach — self-hostable mail hosting: SMTP, IMAP, POP3, filtering and the Manager.
///
/// `postfach serve` runs the server; every other command administers the data directory
/// directly (changes reach a running server at once).
#[derive(Parser, Debug)]
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
    data: PathBuf,

    /// Configuration file [default: DATA/postfach.toml].
    #[arg(long, global = true, env = "POSTFACH_CONFIG")]
    config: Option<PathBuf>,

    /// Print results (and errors, on stderr) as JSON for scripts.
    #[arg(long, global = true)]
    json: bool,

    /// Act as this Manager user, with their rights, instead of as the operator.
    #[arg(
        long = "as",
        global = true,
        value_name = "LOGIN",
        env = "POSTFACH_ACT_AS"
    )]
    act_as: Option<String>,

    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(json, "internal", &format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let (code, message) = match e.downcast_ref::<postfach_core::Error>() {
                Some(core) => (core.code(), core.to_string()),
                None => ("error", format!("{e:#}")),
            };
            output::error(json, code, &message);
            ExitCode::FAILURE
        }
    }
}
