//! `postfach`: the server and its admin CLI in one binary (X1). See the library for the parts.

use std::process::ExitCode;

use clap::Parser;
use postfach::{Cli, cli, output};

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
