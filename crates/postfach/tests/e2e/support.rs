//! Harness: data directories, running CLI commands, starting and stopping the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postfach_store::testing::{PgTestDb, TempDir};

pub const PW: &str = "G7#kq2LmWz-x";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_postfach")
}

/// Every listener on an ephemeral port, so that tests run in parallel.
const EPHEMERAL: [&str; 9] = [
    "POSTFACH_LISTEN_SMTP",
    "POSTFACH_LISTEN_SUBMISSION",
    "POSTFACH_LISTEN_SUBMISSIONS",
    "POSTFACH_LISTEN_IMAP",
    "POSTFACH_LISTEN_IMAPS",
    "POSTFACH_LISTEN_POP3",
    "POSTFACH_LISTEN_POP3S",
    "POSTFACH_LISTEN_MANAGESIEVE",
    "POSTFACH_LISTEN_HTTP",
];

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A data directory for one test; with `postgres()`, its store is a fresh PostgreSQL
/// database, selected through the `POSTFACH_STORE_URL` override.
pub struct Data {
    pub dir: TempDir,
    pub pg: Option<PgTestDb>,
    pub admin_login: String,
    pub admin_password: String,
}

impl Data {
    pub fn sqlite() -> Self {
        Self::init(None)
    }

    pub fn postgres() -> Self {
        Self::init(Some(PgTestDb::create()))
    }

    /// An empty directory: nothing initialised yet.
    pub fn uninitialised() -> Self {
        Data {
            dir: TempDir::new("postfach-e2e"),
            pg: None,
            admin_login: String::new(),
            admin_password: String::new(),
        }
    }

    fn init(pg: Option<PgTestDb>) -> Self {
        let mut data = Data {
            pg,
            ..Self::uninitialised()
        };
        let r = data.run(&["init"]);
        assert!(r.ok, "init failed: {}", r.stderr);
        let field = |name: &str| {
            r.stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("init printed no {name}: {}", r.stdout))
        };
        data.admin_login = field("login:");
        data.admin_password = field("password:");
        data
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The command with `--data`, the test hostname and (for PostgreSQL) the store URL.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--data").arg(self.path()).args(args);
        c.env("POSTFACH_SERVER_HOSTNAME", "mail.e2e.test");
        c.env_remove("POSTFACH_ACT_AS");
        c.env("USER", "tester");
        if let Some(pg) = &self.pg {
            c.env("POSTFACH_STORE_URL", &pg.url);
        }
        for var in EPHEMERAL {
            c.env(var, "127.0.0.1:0");
        }
        // Tests must not wait: fast retries and a short pause after failed AUTH.
        c.env("POSTFACH_QUEUE_RETRY_INITIAL_SECONDS", "1");
        c.env("POSTFACH_QUEUE_RETRY_MAX_SECONDS", "2");
        c.env("POSTFACH_SMTP_AUTH_FAILURE_DELAY_MS", "10");
        c.env("POSTFACH_DNS_TIMEOUT_SECONDS", "2");
        // A clock the test can move (`advance_clock`); absent file = real time.
        c.env(
            "POSTFACH_TESTING_CLOCK_FILE",
            self.path().join("clock-offset"),
        );
        c
    }

    /// Moves the clock of this instance (server and CLI) forward by `seconds`.
    pub fn advance_clock(&self, seconds: i64) {
        let file = self.path().join("clock-offset");
        let now: i64 = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&file, (now + seconds).to_string()).unwrap();
    }

    /// Waits (up to 30 s) until the queue is empty: everything accepted has been delivered
    /// or relayed, including what the delivery pipeline queued (replies, forwards).
    pub fn wait_queue_empty(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            self.json(&["queue", "list"])
                .as_array()
                .is_some_and(|a| a.is_empty())
        });
        assert!(ok, "queue still holds: {}", self.ok(&["queue", "list"]));
    }

    /// Adds `line` to the `[section]` of postfach.toml.
    pub fn config_line(&self, section: &str, line: &str) {
        let path = self.path().join("postfach.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let header = format!("[{section}]\n");
        assert!(text.contains(&header), "postfach.toml has {header}");
        std::fs::write(
            &path,
            text.replacen(&header, &format!("{header}{line}\n"), 1),
        )
        .unwrap();
    }

    /// The messages of a folder, as `postfach mailbox list --json` shows them.
    pub fn messages(&self, address: &str, folder: &str) -> Vec<serde_json::Value> {
        self.json(&["mailbox", "list", address, "--folder", folder])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits (up to 20 s) until `address`'s `folder` holds `n` messages; returns them.
    pub fn wait_messages(&self, address: &str, folder: &str, n: usize) -> Vec<serde_json::Value> {
        let mut last = Vec::new();
        let ok = wait_until(Duration::from_secs(20), || {
            // The folder may not exist yet (delivery creates Promotions, Sieve targets…).
            let r = self.run(&["mailbox", "list", address, "--folder", folder, "--json"]);
            last = if r.ok {
                serde_json::from_str::<serde_json::Value>(&r.stdout)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            last.len() >= n
        });
        assert!(
            ok,
            "{address}/{folder} should hold {n} messages, holds {}",
            last.len()
        );
        last
    }

    /// One stored message, raw.
    pub fn message(&self, address: &str, uid: i64) -> String {
        self.ok(&["mailbox", "show", address, &uid.to_string()])
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run postfach").into()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "`postfach {}` failed: {}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// Runs a command that must fail with one line on stderr; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "`postfach {}` should fail but printed: {}",
            args.join(" "),
            r.stdout
        );
        let line = r.stderr.trim_end();
        assert_eq!(
            line.lines().count(),
            1,
            "one error line expected, got: {line:?}"
        );
        assert!(
            line.starts_with("error: ") || line.starts_with("{\"error\""),
            "{line}"
        );
        line.to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("--json prints JSON")
    }

    /// An organization `Acme` with domain `domain` and a mail service on `offer`.
    pub fn service(&self, domain: &str, offer: &str, quota: Option<i64>) {
        if !self
            .ok(&["org", "list"])
            .lines()
            .any(|l| l.starts_with("Acme "))
        {
            self.ok(&["org", "add", "Acme"]);
        }
        self.ok(&["domain", "add", domain, "--org", "Acme"]);
        let q = quota.map(|q| q.to_string());
        let mut args = vec!["service", "add", domain, "--org", "Acme", "--offer", offer];
        if let Some(q) = &q {
            args.extend(["--quota", q]);
        }
        self.ok(&args);
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// The message bodies kept as files (`blobs/ab/cd/<64 hex>`).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut stack = vec![self.path().join("blobs")];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                let path = e.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().unwrap().len() == 64 {
                    files.push(path);
                }
            }
        }
        files
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/tools")
        .join(name)
}

/// Runs one of the Python tools in `tests/e2e/tools` and returns its stdout; a failing tool
/// fails the test with its stderr.
pub fn run_tool(name: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("python3")
        .arg(tool(name))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `input` on its standard input and returns its standard output; a failing
/// command fails the test with its stderr.
pub fn piped(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A 2048-bit RSA key made with openssl in the data directory: (PEM path, the base64
/// SubjectPublicKeyInfo to publish as `p=` of a DKIM key record).
pub fn rsa_key(data: &Data, name: &str) -> (PathBuf, String) {
    let pem = data.path().join(format!("{name}.pem"));
    let keygen = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&pem)
        .arg("2048")
        .output()
        .expect("openssl");
    assert!(keygen.status.success());
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl");
    use base64::Engine;
    (
        pem,
        base64::engine::general_purpose::STANDARD.encode(&der.stdout),
    )
}

/// Runs a Python script (an independent client) with arguments.
pub fn python(script: &str, args: &[&str]) -> Run {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3")
        .into()
}

/// A helper process (test DNS server, SMTP sink) that prints its port first; killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Peer {
    fn start(script: &str, args: &[&str]) -> Peer {
        let mut child = Command::new("python3")
            .arg(tool(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a python helper");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed no port: {line:?}"));
        Peer { child, port }
    }

    /// An authoritative DNS server for `records` ({"name.": [["TXT", "..."], …]}).
    pub fn dns(dir: &Path, records: &serde_json::Value) -> Peer {
        let file = dir.join(format!("zone-{}.json", std::process::id()));
        std::fs::write(&file, records.to_string()).unwrap();
        Peer::start("dns_server.py", &[file.to_str().unwrap()])
    }

    /// A remote MX stand-in saving accepted mail into `dir` (see smtp_sink.py for modes);
    /// with a certificate and key it offers STARTTLS.
    pub fn sink(dir: &Path, mode: &str, tls: Option<(&Path, &Path)>) -> Peer {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec![dir.to_str().unwrap().to_string(), mode.to_string()];
        if let Some((cert, key)) = tls {
            args.push(cert.to_str().unwrap().to_string());
            args.push(key.to_str().unwrap().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Peer::start("smtp_sink.py", &args)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `postfach serve`; stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub http: String,
    /// Listener name (smtp, submission, …) → address.
    pub listeners: HashMap<String, SocketAddr>,
    pub stdout: Vec<String>,
    /// The test DNS server the instance resolves with (kept running while the server is).
    _dns: Peer,
    /// Keeps the reader thread draining the server's stdout (a closed pipe would make the
    /// server's next print fail).
    _lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(data: &Data) -> Server {
        Self::start_opts(data, &serde_json::json!({}), &[])
    }

    /// Starts with a test DNS server holding `records`, and extra environment.
    pub fn start_opts(data: &Data, records: &serde_json::Value, env: &[(&str, &str)]) -> Server {
        let dns = Peer::dns(data.path(), records);
        let mut cmd = data.command(&["serve"]);
        cmd.env(
            "POSTFACH_DNS_NAMESERVERS",
            format!("127.0.0.1:{}", dns.port),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The server's log (stderr) goes to server.log in the data directory: tests read it
        // where the log is what an operator relies on, and it is there after a failure.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.path().join("server.log"))
            .expect("server.log");
        cmd.stderr(log);
        Self::start_with(cmd, dns)
    }

    /// Starts `cmd` (a `serve` command) and waits until it says it is ready.
    fn start_with(mut cmd: Command, dns: Peer) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn postfach serve");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = Vec::new();
        let mut listeners = HashMap::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line == "Postfach is ready." => break,
                Ok(line) => {
                    if let Some((name, rest)) = line
                        .strip_prefix("Listening: ")
                        .and_then(|l| l.split_once("://"))
                        && let Some(addr) = rest.split_whitespace().next()
                    {
                        listeners.insert(name.to_string(), addr.parse().unwrap());
                    }
                    stdout.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start; printed: {stdout:?}");
                }
            }
        }
        let http = format!(
            "http://{}",
            listeners.get("http").expect("an http listener")
        );
        Server {
            child,
            http,
            listeners,
            stdout,
            _dns: dns,
            _lines: lines,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self, listener: &str) -> u16 {
        self.listeners[listener].port()
    }

    /// Kills the server without warning (crash tests).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs a scripted client (imap_client.py, pop3_client.py) with the script on stdin; returns
/// its JSON output.
pub fn scripted(tool_name: &str, args: &[&str], script: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(tool(tool_name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool_name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the client")
}

/// Delivers `message` to `to` through the inbound SMTP listener (Python smtplib).
pub fn deliver(s: &Server, from: &str, to: &str, message: &str) {
    let r = python(
        "import smtplib,sys\n\
         c = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='mx.sender.example')\n\
         c.sendmail(sys.argv[2], [sys.argv[3]], sys.argv[4].encode())\n\
         c.quit()\n",
        &[&s.port("smtp").to_string(), from, to, message],
    );
    assert!(r.ok, "SMTP delivery failed: {}", r.stderr);
}
