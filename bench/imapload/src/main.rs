//! `imapload`: the load generator of `bench/run`. Every subcommand talks to a server
//! over loopback with blocking std sockets and prints one JSON object on stdout.
//!
//! ```text
//! imapload populate  --port P --users u%03d@d --count N --password PW --messages M
//! imapload ops       --port P --users … --count N --password PW --seconds S
//! imapload idle      --port P --users … --count N --password PW --connections C
//! imapload count     --port P --users … --count N --password PW --more N --timeout S
//! imapload pop3      --port P --user U --password PW --messages M
//! imapload smtp-probe --port P --to ADDR --seconds S
//! ```
//! `--users` is a pattern with `%03d` for the user number (0..count).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Args {
        let mut m = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let k = v[i].trim_start_matches("--").to_string();
            let val = v.get(i + 1).cloned().unwrap_or_default();
            m.insert(k, val);
            i += 2;
        }
        Args(m)
    }
    fn s(&self, k: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| die(&format!("--{k} is required")))
    }
    fn n(&self, k: &str, default: u64) -> u64 {
        match self.0.get(k) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("--{k}: not a number"))),
            None => default,
        }
    }
    fn users(&self) -> Vec<String> {
        let pat = self.s("users");
        (0..self.n("count", 1))
            .map(|i| pat.replace("%03d", &format!("{i:03}")))
            .collect()
    }
}

fn die(msg: &str) -> ! {
    eprintln!("imapload: {msg}");
    std::process::exit(2)
}

/// A 4 KiB message (headers + body) numbered `n`, the same bytes for every server.
fn message(n: u64, to: &str) -> Vec<u8> {
    let words = [
        "meeting", "invoice", "project", "report", "holiday", "budget", "review", "release",
    ];
    let mut m = format!(
        "From: Bench Sender <sender@bench.test>\r\nTo: <{to}>\r\nSubject: {} number {n}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}.{to}@bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        words[(n % 8) as usize]
    )
    .into_bytes();
    let mut line = 0u64;
    while m.len() < 4096 - 80 {
        m.extend_from_slice(
            format!("Line {line} of message {n}: the quick brown fox jumps over the lazy dog.\r\n")
                .as_bytes(),
        );
        line += 1;
    }
    m
}

struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u64,
}

impl Imap {
    fn connect(port: u64) -> Res<Imap> {
        let s = TcpStream::connect(("127.0.0.1", port as u16)).map_err(|e| e.to_string())?;
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(120))).ok();
        let w = s.try_clone().map_err(|e| e.to_string())?;
        let mut c = Imap {
            r: BufReader::with_capacity(64 * 1024, s),
            w,
            tag: 0,
        };
        let greeting = c.line()?;
        if !greeting.starts_with(b"* OK") {
            return Err(format!("greeting: {}", String::from_utf8_lossy(&greeting)));
        }
        Ok(c)
    }

    fn line(&mut self) -> Res<Vec<u8>> {
        let mut l = Vec::new();
        let n = self
            .r
            .read_until(b'\n', &mut l)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        Ok(l)
    }

    /// Reads one response line including the literals it announces; returns its bytes.
    fn response(&mut self, into: &mut Vec<u8>) -> Res<usize> {
        let start = into.len();
        loop {
            let l = self.line()?;
            into.extend_from_slice(&l);
            let t = l.strip_suffix(b"\r\n").unwrap_or(&l);
            if let Some(open) = t.iter().rposition(|&b| b == b'{')
                && t.ends_with(b"}")
                && let Ok(n) = std::str::from_utf8(&t[open + 1..t.len() - 1])
                    .unwrap_or("x")
                    .trim_end_matches('+')
                    .parse::<usize>()
            {
                let at = into.len();
                into.resize(at + n, 0);
                self.r
                    .read_exact(&mut into[at..])
                    .map_err(|e| e.to_string())?;
                continue;
            }
            return Ok(start);
        }
    }

    /// Sends a command and reads up to its tagged completion, which must be OK.
    fn cmd(&mut self, command: &str) -> Res<Vec<u8>> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.w
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.finish(&tag, command)
    }

    fn finish(&mut self, tag: &str, command: &str) -> Res<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let at = self.response(&mut all)?;
            if all[at..].starts_with(tag.as_bytes()) && all.get(at + tag.len()) == Some(&b' ') {
                let status = &all[at + tag.len() + 1..];
                if status.starts_with(b"OK") {
                    return Ok(all);
                }
                return Err(format!(
                    "{command}: {}",
                    String::from_utf8_lossy(status).trim_end()
                ));
            }
        }
    }

    fn login(&mut self, user: &str, pw: &str) -> Res<()> {
        self.cmd(&format!("LOGIN \"{user}\" \"{pw}\"")).map(|_| ())
    }

    fn append(&mut self, msg: &[u8]) -> Res<()> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.w
            .write_all(format!("{tag} APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes())
            .map_err(|e| e.to_string())?;
        let cont = self.line()?;
        if !cont.starts_with(b"+") {
            return Err(format!("APPEND: {}", String::from_utf8_lossy(&cont)));
        }
        self.w.write_all(msg).map_err(|e| e.to_string())?;
        self.w.write_all(b"\r\n").map_err(|e| e.to_string())?;
        self.finish(&tag, "APPEND").map(|_| ())
    }
}

/// The MESSAGES count of a STATUS response.
fn status_messages(resp: &[u8]) -> u64 {
    String::from_utf8_lossy(resp)
        .split("MESSAGES ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

/// Xorshift: the same sequence of random message numbers on both servers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn populate(a: &Args) -> Res<String> {
    let port = a.n("port", 143);
    let pw = a.s("password");
    let messages = a.n("messages", 10_000);
    let started = Instant::now();
    let handles: Vec<_> = a
        .users()
        .into_iter()
        .map(|user| {
            let pw = pw.clone();
            std::thread::spawn(move || -> Res<()> {
                let mut c = Imap::connect(port)?;
                c.login(&user, &pw)?;
                let have = status_messages(&c.cmd("STATUS INBOX (MESSAGES)")?);
                for n in have..messages {
                    c.append(&message(n, &user))?;
                }
                c.cmd("LOGOUT").ok();
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "populate thread panicked")??;
    }
    Ok(format!(
        "{{\"populated_seconds\": {:.2}}}",
        started.elapsed().as_secs_f64()
    ))
}

const OPS: [&str; 8] = [
    "select",
    "fetch_flags",
    "fetch_envelope",
    "fetch_body",
    "search_unseen",
    "search_subject",
    "store",
    "append",
];

/// One operation of the kind `op` on a selected 10,000-message mailbox.
fn op(c: &mut Imap, op: &str, rng: &mut Rng, messages: u64, user: &str) -> Res<()> {
    let uid = 1 + rng.below(messages);
    match op {
        "select" => c.cmd("SELECT INBOX").map(|_| ()),
        // A client's resync of a window of 100 messages' flags.
        "fetch_flags" => {
            let a = 1 + rng.below(messages.saturating_sub(100).max(1));
            c.cmd(&format!("UID FETCH {a}:{} (FLAGS)", a + 99))
                .map(|_| ())
        }
        // A client's message list: 100 messages' envelopes, sizes, dates, flags.
        "fetch_envelope" => {
            let a = 1 + rng.below(messages.saturating_sub(100).max(1));
            c.cmd(&format!(
                "UID FETCH {a}:{} (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
                a + 99
            ))
            .map(|_| ())
        }
        "fetch_body" => c.cmd(&format!("UID FETCH {uid} (BODY.PEEK[])")).map(|_| ()),
        "search_unseen" => c.cmd("UID SEARCH UNSEEN").map(|_| ()),
        "search_subject" => {
            let n = rng.below(messages);
            c.cmd(&format!("UID SEARCH SUBJECT \"number {n}\""))
                .map(|_| ())
        }
        "store" => {
            let sign = if rng.next() & 1 == 0 { '+' } else { '-' };
            c.cmd(&format!("UID STORE {uid} {sign}FLAGS.SILENT (\\Flagged)"))
                .map(|_| ())
        }
        "append" => c.append(&message(1_000_000 + rng.next() % 1_000_000, user)),
        _ => Err(format!("unknown op {op}")),
    }
}

fn ops(a: &Args) -> Res<String> {
    let port = a.n("port", 143);
    let pw = a.s("password");
    let seconds = a.n("seconds", 10);
    let messages = a.n("messages", 10_000);
    let users = a.users();
    let clients = users.len();
    // --ops select,store: only these (e.g. to profile one command); default all.
    let only = a.0.get("ops").cloned().unwrap_or_default();
    let selected: Vec<&'static str> = OPS
        .iter()
        .copied()
        .filter(|o| only.is_empty() || only.split(',').any(|x| x == *o))
        .collect();
    let barrier = Arc::new(Barrier::new(clients + 1));
    let counts: Arc<Vec<AtomicU64>> =
        Arc::new(selected.iter().map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut handles = Vec::new();
    for (i, user) in users.into_iter().enumerate() {
        let selected = selected.clone();
        let (pw, barrier, counts, stop, failed) = (
            pw.clone(),
            barrier.clone(),
            counts.clone(),
            stop.clone(),
            failed.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
            let mut c = match Imap::connect(port).and_then(|mut c| {
                c.login(&user, &pw)?;
                c.cmd("SELECT INBOX")?;
                Ok(c)
            }) {
                Ok(c) => Some(c),
                Err(e) => {
                    *failed.lock().unwrap() = Some(e);
                    None
                }
            };
            for (k, name) in selected.iter().enumerate() {
                barrier.wait(); // phase start
                while let Some(conn) = c.as_mut() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match op(conn, name, &mut rng, messages, &user) {
                        Ok(()) => {
                            counts[k].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            *failed.lock().unwrap() = Some(e);
                            c = None;
                        }
                    }
                }
                barrier.wait(); // phase end
            }
        }));
    }
    let mut out = Vec::new();
    for (k, name) in selected.iter().enumerate() {
        stop.store(false, Ordering::SeqCst);
        barrier.wait();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::SeqCst);
        barrier.wait();
        let rate = counts[k].load(Ordering::SeqCst) as f64 / t.elapsed().as_secs_f64();
        out.push(format!("\"{name}\": {rate:.1}"));
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failed.lock().unwrap().take() {
        return Err(e);
    }
    Ok(format!("{{{}, \"clients\": {clients}}}", out.join(", ")))
}

fn idle(a: &Args) -> Res<String> {
    let port = a.n("port", 143);
    let pw = a.s("password");
    let users = a.users();
    let n = a.n("connections", 2000) as usize;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let user = &users[i % users.len()];
        let mut c = Imap::connect(port)?;
        c.login(user, &pw)?;
        c.cmd("SELECT INBOX")?;
        c.tag += 1;
        c.w.write_all(format!("a{} IDLE\r\n", c.tag).as_bytes())
            .map_err(|e| e.to_string())?;
        let cont = c.line()?;
        if !cont.starts_with(b"+") {
            return Err(format!("IDLE: {}", String::from_utf8_lossy(&cont)));
        }
        conns.push(c);
    }
    // Tell the runner, then hold the connections until it closes our stdin.
    println!("{{\"ready\": {n}}}");
    std::io::stdout().flush().ok();
    let mut sink = String::new();
    let _ = std::io::stdin().read_to_string(&mut sink);
    for mut c in conns {
        let tag = format!("a{}", c.tag);
        let _ = c.w.write_all(b"DONE\r\n");
        c.finish(&tag, "IDLE")?;
    }
    Ok(format!("{{\"closed\": {n}}}"))
}

fn count(a: &Args) -> Res<String> {
    let port = a.n("port", 143);
    let pw = a.s("password");
    let more = a.n("more", 0);
    let timeout = Duration::from_secs(a.n("timeout", 600));
    let mut conns = Vec::new();
    for user in a.users() {
        let mut c = Imap::connect(port)?;
        c.login(&user, &pw)?;
        conns.push(c);
    }
    let total = |conns: &mut Vec<Imap>| -> Res<u64> {
        let mut total = 0;
        for c in conns.iter_mut() {
            total += status_messages(&c.cmd("STATUS INBOX (MESSAGES)")?);
        }
        Ok(total)
    };
    // The clock starts when the runner reads "ready"; the messages already there don't count.
    let expect = total(&mut conns)? + more;
    println!("{{\"ready\": {}}}", conns.len());
    std::io::stdout().flush().ok();
    let start = Instant::now();
    loop {
        let total = total(&mut conns)?;
        if total >= expect {
            return Ok(format!(
                "{{\"messages\": {total}, \"seconds_after_ready\": {:.3}}}",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "only {total} of {expect} messages after {timeout:?}"
            ));
        }
        // Every 0.5 s: 100 STATUS commands per round are load too (the same on both servers).
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pop3(a: &Args) -> Res<String> {
    let port = a.n("port", 110);
    let messages = a.n("messages", 1000);
    let s = TcpStream::connect(("127.0.0.1", port as u16)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let mut line = Vec::new();
    let mut ok = |r: &mut BufReader<TcpStream>, what: &str| -> Res<()> {
        line.clear();
        r.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if line.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(format!("{what}: {}", String::from_utf8_lossy(&line)))
        }
    };
    ok(&mut r, "greeting")?;
    for (cmd, what) in [
        (format!("USER {}\r\n", a.s("user")), "USER"),
        (format!("PASS {}\r\n", a.s("password")), "PASS"),
    ] {
        w.write_all(cmd.as_bytes()).map_err(|e| e.to_string())?;
        ok(&mut r, what)?;
    }
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 1..=messages {
        w.write_all(format!("RETR {i}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        ok(&mut r, "RETR")?;
        loop {
            let mut l = Vec::new();
            let n = r.read_until(b'\n', &mut l).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed in RETR".into());
            }
            if l == b".\r\n" {
                break;
            }
            bytes += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    w.write_all(b"QUIT\r\n").ok();
    Ok(format!(
        "{{\"seconds\": {secs:.3}, \"messages_per_second\": {:.1}, \"bytes\": {bytes}}}",
        messages as f64 / secs
    ))
}

/// One SMTP session sending a 4 KiB message every `--interval-ms` (default 100); the time
/// from the end of DATA ("." sent) to the 250 reply is the latency a sending server sees.
/// Paced, so that the probe measures the load instead of adding to it: sent back to back it
/// added up to a few hundred messages a second to a system that answers fast (Postfix's queue
/// takes them in ~1 ms), which its delivery then had to work off during and after the ingest.
fn smtp_probe(a: &Args) -> Res<String> {
    let port = a.n("port", 25);
    let interval = Duration::from_millis(a.n("interval-ms", 100));
    let to = a.s("to");
    let limit = Duration::from_secs(a.n("seconds", 30));
    let s = TcpStream::connect(("127.0.0.1", port as u16)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let reply = |r: &mut BufReader<TcpStream>, want: &str| -> Res<()> {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).map_err(|e| e.to_string())?;
            if l.len() < 4 {
                return Err(format!("short reply {l:?}"));
            }
            if l.as_bytes()[3] == b'-' {
                continue;
            }
            return if l.starts_with(want) {
                Ok(())
            } else {
                Err(format!("expected {want}, got {}", l.trim_end()))
            };
        }
    };
    reply(&mut r, "220")?;
    let send = |w: &mut TcpStream, s: &str| w.write_all(s.as_bytes()).map_err(|e| e.to_string());
    send(&mut w, "EHLO probe.bench.test\r\n")?;
    reply(&mut r, "250")?;
    // Runs until the runner closes our stdin (the ingest is over) or the time limit.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < limit && !stop.load(Ordering::SeqCst) {
        let next = Instant::now() + interval;
        send(&mut w, "MAIL FROM:<probe@sender.bench.test>\r\n")?;
        reply(&mut r, "250")?;
        send(&mut w, &format!("RCPT TO:<{to}>\r\n"))?;
        reply(&mut r, "250")?;
        send(&mut w, "DATA\r\n")?;
        reply(&mut r, "354")?;
        w.write_all(&message(5_000_000 + n, &to))
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        send(&mut w, ".\r\n")?;
        reply(&mut r, "250")?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        n += 1;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    send(&mut w, "QUIT\r\n").ok();
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    if lat.is_empty() {
        return Err("no message sent".into());
    }
    Ok(format!(
        "{{\"messages\": {n}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    ))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((sub, rest)) = argv.split_first() else {
        die("usage: imapload populate|ops|idle|count|pop3|smtp-probe --port P …");
    };
    let a = Args::parse(rest);
    let result = match sub.as_str() {
        "populate" => populate(&a),
        "ops" => ops(&a),
        "idle" => idle(&a),
        "count" => count(&a),
        "pop3" => pop3(&a),
        "smtp-probe" => smtp_probe(&a),
        other => die(&format!("unknown subcommand {other}")),
    };
    match result {
        Ok(json) => println!("{json}"),
        Err(e) => die(&e),
    }
}
