//! The configuration file (`postfach.toml`, X-section of DESIGN.md): any text, with environment
//! overrides, must either give a valid configuration or one error line naming the problem —
//! never a panic. A configuration that parses must also validate the derived settings the
//! server builds from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Environment overrides come from the tail after a NUL: KEY=VALUE lines.
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    match postfach::config::parse(file, &lookup) {
        Ok(cfg) => {
            let _ = cfg.policy();
            let _ = cfg.smtp("fuzz-node");
            let _ = cfg.https();
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "error text: {e:?}"),
    }
});
