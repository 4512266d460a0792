//! Harness: data directories, running CLI commands, starting and stopping the server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
        c
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
}

/// A running `postfach serve`; stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub http: String,
    pub stdout: Vec<String>,
    /// Keeps the reader thread draining the server's stdout (a closed pipe would make the
    /// server's next print fail).
    _lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(data: &Data) -> Server {
        Self::start_with(data.command(&["serve"]))
    }

    /// Starts `cmd` (a `serve` command) and waits until it says it is ready.
    pub fn start_with(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        let mut http = None;
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line == "Postfach is ready." => break,
                Ok(line) => {
                    if let Some(addr) = line
                        .strip_prefix("Listening: http://")
                        .and_then(|rest| rest.split_whitespace().next())
                    {
                        http = Some(format!("http://{addr}"));
                    }
                    stdout.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start; printed: {stdout:?}");
                }
            }
        }
        let http = http.expect("an http listener is announced");
        Server {
            child,
            http,
            stdout,
            _lines: lines,
        }
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
