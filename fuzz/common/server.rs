//! The real Postfach server, started once per fuzzing process in a background thread, so that
//! fuzz targets can drive a whole protocol session (SMTP, POP3, HTTP autoconfig) over loopback
//! and libFuzzer sees — and steers by — the server code each input reaches.
//!
//! The server is set up exactly as `postfach serve` does it (`postfach::serve::run`) on a fresh
//! data directory with one hosted address holding a few messages. Rate limits are lifted (the
//! fuzzer connects thousands of times a second from one IP) and DNS points at a closed port so
//! that SPF/DKIM/DMARC lookups fail at once instead of waiting for a network.
//!
//! A panic in a server task aborts the process: libfuzzer-sys installs an aborting panic hook,
//! so a panic that tokio would otherwise catch in a session task is reported as a crash.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;

pub const ADDRESS: &str = "fuzz@fuzz.example";
pub const PASSWORD: &str = "Quokka-Lantern-4821";

pub struct Server {
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub pop3: SocketAddr,
    pub http: SocketAddr,
}

/// A DNS server on loopback that answers every query with NXDOMAIN at once, so that the
/// SPF/DKIM/DMARC lookups of an accepted message cost a round trip, not a resolver timeout
/// (a closed port made each accepted message wait seconds: 5 executions a second).
fn dns_stub() -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP port");
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            // RFC 1035 §4.1.1: QR=1, opcode and RD kept, RA=1, RCODE=3; question echoed.
            // Header and the question only (an EDNS OPT record of the query is not echoed).
            let mut end = 12;
            while end < n && buf[end] != 0 {
                end += 1 + buf[end] as usize;
            }
            let end = (end + 5).min(n);
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x80 | (buf[2] & 0x79);
            reply[3] = 0x80 | 3;
            reply[6..12].fill(0);
            let _ = sock.send_to(&reply, peer);
        }
    });
    addr.to_string()
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().unwrap()
}

fn cli(data: &PathBuf, args: &[&str]) {
    let mut argv = vec!["postfach", "--data", data.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = postfach::Cli::try_parse_from(&argv).expect("valid CLI arguments");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(postfach::cli::run(cli)).expect("CLI command");
    assert_eq!(code, std::process::ExitCode::SUCCESS, "postfach {args:?}");
}

pub fn get() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> Server {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let data = base.join(format!("postfach-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server {
        smtp: free_port(),
        submission: free_port(),
        pop3: free_port(),
        http: free_port(),
    };
    let listeners = [
        ("POSTFACH_LISTEN_SMTP", server.smtp),
        ("POSTFACH_LISTEN_SUBMISSION", server.submission),
        ("POSTFACH_LISTEN_SUBMISSIONS", free_port()),
        ("POSTFACH_LISTEN_IMAP", free_port()),
        ("POSTFACH_LISTEN_IMAPS", free_port()),
        ("POSTFACH_LISTEN_POP3", server.pop3),
        ("POSTFACH_LISTEN_POP3S", free_port()),
        ("POSTFACH_LISTEN_MANAGESIEVE", free_port()),
        ("POSTFACH_LISTEN_HTTP", server.http),
    ];
    let settings = [
        ("POSTFACH_SERVER_HOSTNAME", "mail.fuzz.example".to_string()),
        ("POSTFACH_LOG_LEVEL", "off".to_string()),
        ("POSTFACH_DNS_NAMESERVERS", dns_stub()),
        ("POSTFACH_DNS_TIMEOUT_SECONDS", "1".to_string()),
        ("POSTFACH_SMTP_MAX_CONNECTIONS_PER_IP", "100000".to_string()),
        (
            "POSTFACH_SMTP_CONNECTIONS_PER_MINUTE_PER_IP",
            "1000000000".to_string(),
        ),
        (
            "POSTFACH_SMTP_COMMANDS_PER_MINUTE_PER_IP",
            "1000000000".to_string(),
        ),
        ("POSTFACH_SMTP_AUTH_FAILURE_DELAY_MS", "0".to_string()),
        ("POSTFACH_SMTP_MAX_MESSAGE_SIZE", "65536".to_string()),
        ("POSTFACH_POP3_MAX_CONNECTIONS_PER_IP", "100000".to_string()),
        (
            "POSTFACH_POP3_CONNECTIONS_PER_MINUTE_PER_IP",
            "1000000000".to_string(),
        ),
    ];
    // SAFETY: set once, before the server's threads exist; the fuzz target is single-threaded
    // up to here.
    unsafe {
        for (k, v) in listeners {
            std::env::set_var(k, v.to_string());
        }
        for (k, v) in settings {
            std::env::set_var(k, v);
        }
        std::env::remove_var("POSTFACH_ACT_AS");
    }
    cli(&data, &["init"]);
    cli(&data, &["org", "add", "Fuzz"]);
    cli(&data, &["domain", "add", "fuzz.example", "--org", "Fuzz"]);
    cli(
        &data,
        &[
            "service",
            "add",
            "fuzz.example",
            "--org",
            "Fuzz",
            "--offer",
            "standard",
        ],
    );
    cli(&data, &["address", "add", ADDRESS, "--password", PASSWORD]);

    let paths = postfach::app::Paths::new(data.clone(), None);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        if let Err(e) = rt.block_on(postfach::serve::run(paths)) {
            eprintln!("fuzz server stopped: {e:#}");
            std::process::abort();
        }
    });
    let start = Instant::now();
    while TcpStream::connect(server.http).is_err() || TcpStream::connect(server.pop3).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A few messages for POP3 RETR/TOP/DELE to work on.
    for i in 0..3 {
        let msg = format!(
            "EHLO client.fuzz.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<{ADDRESS}>\r\nDATA\r\nFrom: a@sender.example\r\nSubject: seed {i}\r\n\r\nbody {i}\r\n.\r\nQUIT\r\n"
        );
        let reply = converse(server.smtp, msg.as_bytes());
        assert!(
            String::from_utf8_lossy(&reply).contains("250 2.0.0"),
            "seed message not accepted: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    // Delivery into the mailbox is asynchronous; the POP3 target works without it too.
    std::thread::sleep(Duration::from_secs(2));
    server
}

/// Sends `input` on a new connection, closes the sending half and reads every reply until
/// the server closes. A server that neither answers nor closes within 20 s is a hang.
pub fn converse(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    exchange(addr, input, true)
}

/// Like [`converse`]; without `half_close` the sending half stays open (HTTP: hyper drops a
/// request whose client has shut down its side; `Connection: close` ends the exchange).
pub fn exchange(addr: SocketAddr, input: &[u8], half_close: bool) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).expect("connect to the fuzz server");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A reader thread is not needed: replies to one input stay far below the socket buffer,
    // and the input is bounded by libFuzzer's -max_len.
    let _ = tcp.write_all(input);
    if half_close {
        let _ = tcp.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            // libFuzzer's -timeout alarm (SIGALRM) interrupts blocking reads.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!(
                "the server neither answered nor closed the connection: {e} (after {} bytes: {:?})",
                out.len(),
                String::from_utf8_lossy(&out[out.len().saturating_sub(300)..])
            ),
        }
    }
    out
}
