//! `postfach`: the server and its admin CLI in one binary (X1). See the library for the parts.

use std::process::ExitCode;

use clap::Parser;
use postfach::{Cli, cli, output};

/// glibc's malloc raises its mmap threshold to the size of the largest block freed so far (up
/// to 32 MiB). After the first argon2id login (19 MiB of working memory) every later one is
/// served from a heap arena, and each arena then keeps up to twice that free instead of
/// returning it: bench/soak measured ~60 MiB RSS per arena that ever hashed a password. A
/// fixed threshold keeps large blocks in mmap, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_malloc_mmap_threshold() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_malloc_mmap_threshold() {}

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
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
