//! A real DNS server for the conformance tests: tests/data/spf_suite_dns.py (dnslib) serving
//! a zone in the openspf suite's format, on a UDP port of 127.0.0.1; stopped when dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use crate::config::DnsSettings;

pub(crate) struct ZoneDns {
    child: Child,
    port: u16,
}

impl ZoneDns {
    pub(crate) fn start(zone: &serde_json::Value) -> ZoneDns {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spf_suite_dns.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with dnslib");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(zone.to_string().as_bytes())
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the DNS server's port");
        ZoneDns { child, port }
    }

    /// Resolver settings that ask this server only, with a one-second timeout.
    pub(crate) fn settings(&self) -> DnsSettings {
        DnsSettings {
            nameservers: vec![format!("127.0.0.1:{}", self.port)],
            timeout_seconds: 1,
            ..DnsSettings::default()
        }
    }
}

impl Drop for ZoneDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
