//! POP3 end to end (P4): Python's `poplib` as the independent client, raw sockets
//! for malformed input; the mailbox is checked through the CLI.

use serde_json::{Value, json};

use crate::imap::raw;
use crate::support::{Data, PW, Server, deliver, python};

const BOB: &str = "bob@acme.example";

fn setup() -> (Data, Server) {
    let d = Data::sqlite();
    d.service("acme.example", "standard", Some(10));
    d.ok(&["address", "add", BOB, "--password", PW]);
    let s = Server::start(&d);
    for (i, body) in [
        "first body",
        ".starts with a dot\r\n..two dots",
        "third body",
    ]
    .iter()
    .enumerate()
    {
        deliver(
            &s,
            "carol@sender.example",
            BOB,
            &format!("From: carol@sender.example\r\nSubject: pop {i}\r\n\r\n{body}\r\n"),
        );
    }
    d.wait_messages(BOB, "INBOX", 3);
    (d, s)
}

/// Runs a poplib script (the body of `run(p)` gets the connection in `p`, results go into
/// `out`); prints `out` as JSON.
fn poplib(s: &Server, body: &str) -> Value {
    let script = format!(
        "import json, poplib, ssl, base64, sys\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         plain, tls, user, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]\n\
         out = {{}}\n\
         def text(v):\n\
         \x20   if isinstance(v, bytes): return v.decode('utf-8', 'replace')\n\
         \x20   if isinstance(v, (list, tuple)): return [text(x) for x in v]\n\
         \x20   if isinstance(v, dict): return {{k: text(x) for k, x in v.items()}}\n\
         \x20   return v\n\
         def err(f, *a):\n\
         \x20   try:\n\
         \x20       return text(f(*a))\n\
         \x20   except poplib.error_proto as e:\n\
         \x20       return 'ERR ' + text(e.args[0])\n\
         {body}\n\
         print(json.dumps(out))\n"
    );
    let r = python(
        &script,
        &[
            &s.port("pop3").to_string(),
            &s.port("pop3s").to_string(),
            BOB,
            PW,
        ],
    );
    assert!(r.ok, "poplib script failed: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn poplib_session_with_stls_top_retr_dele_rset_and_expunge_on_quit() {
    let (d, s) = setup();
    let out = poplib(
        &s,
        "p = poplib.POP3('127.0.0.1', plain)\n\
         out['greeting'] = text(p.getwelcome())\n\
         out['capa_plain'] = text(p.capa())\n\
         out['user_plain'] = err(p.user, user)\n\
         p.stls(ctx)\n\
         out['capa_tls'] = text(p.capa())\n\
         p.user(user)\n\
         out['pass'] = text(p.pass_(pw))\n\
         out['stat'] = p.stat()\n\
         out['list'] = text(p.list()[1])\n\
         out['uidl'] = text(p.uidl()[1])\n\
         out['top'] = text(p.top(1, 0)[1])\n\
         out['retr'] = text(p.retr(2)[1])\n\
         out['sizes'] = [[int(l.split()[1]), sum(len(x) + 2 for x in p.retr(int(l.split()[0]))[1])] for l in text(p.list()[1])]\n\
         out['retr_missing'] = err(p.retr, 9)\n\
         out['dele'] = text(p.dele(1))\n\
         out['retr_deleted'] = err(p.retr, 1)\n\
         out['stat_after_dele'] = p.stat()\n\
         out['rset'] = text(p.rset())\n\
         out['stat_after_rset'] = p.stat()\n\
         p.dele(1)\n\
         out['noop'] = text(p.noop())\n\
         out['quit'] = text(p.quit())\n\
         q = poplib.POP3_SSL('127.0.0.1', tls, context=ctx)\n\
         q.user(user); q.pass_(pw)\n\
         out['uidl_again'] = text(q.uidl()[1])\n\
         q.quit()",
    );
    assert!(out["greeting"].as_str().unwrap().starts_with("+OK"));
    // LIST's sizes are the octets RETR serves (after the byte-stuffing is undone).
    for pair in out["sizes"].as_array().unwrap() {
        assert_eq!(
            pair[0], pair[1],
            "LIST size vs RETR octets: {}",
            out["sizes"]
        );
    }
    let capa = out["capa_plain"].to_string();
    assert!(capa.contains("STLS") && !capa.contains("USER"), "{capa}");
    assert!(
        out["user_plain"].as_str().unwrap().contains("STLS first"),
        "{out}"
    );
    let capa = out["capa_tls"].to_string();
    assert!(
        capa.contains("USER")
            && capa.contains("SASL")
            && capa.contains("UIDL")
            && capa.contains("TOP"),
        "{capa}"
    );
    assert_eq!(out["stat"][0], json!(3));
    assert_eq!(out["list"].as_array().unwrap().len(), 3);
    let uidl: Vec<String> = serde_json::from_value(out["uidl"].clone()).unwrap();
    assert_eq!(uidl.len(), 3);
    let top = out["top"].to_string();
    assert!(
        top.contains("Subject: pop 0") && !top.contains("first body"),
        "{top}"
    );
    let retr: Vec<String> = serde_json::from_value(out["retr"].clone()).unwrap();
    assert!(
        retr.contains(&".starts with a dot".to_string())
            && retr.contains(&"..two dots".to_string()),
        "byte-stuffing undone by the client gives the original lines: {retr:?}"
    );
    assert!(
        out["retr_missing"]
            .as_str()
            .unwrap()
            .starts_with("ERR -ERR"),
        "{out}"
    );
    assert!(
        out["retr_deleted"]
            .as_str()
            .unwrap()
            .starts_with("ERR -ERR"),
        "{out}"
    );
    assert_eq!(out["stat_after_dele"][0], json!(2));
    assert_eq!(out["stat_after_rset"][0], json!(3), "RSET undoes DELE");
    assert!(out["quit"].as_str().unwrap().starts_with("+OK"));
    // DELE took effect at QUIT; the unique ids of the rest did not change.
    let left: Vec<String> = d
        .messages(BOB, "INBOX")
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["pop 1", "pop 2"]);
    let again: Vec<String> = serde_json::from_value(out["uidl_again"].clone()).unwrap();
    let ids = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    };
    assert_eq!(ids(&again), ids(&uidl)[1..].to_vec());
    // RETR marked the message read for IMAP clients of the same mailbox.
    let flags = &d.messages(BOB, "INBOX")[0]["flags"];
    assert!(flags.to_string().contains("\\\\Seen"), "{flags}");
}

#[test]
fn dele_without_quit_deletes_nothing_and_the_maildrop_is_exclusive() {
    let (d, s) = setup();
    let out = poplib(
        &s,
        "p = poplib.POP3_SSL('127.0.0.1', tls, context=ctx)\n\
         p.user(user); p.pass_(pw)\n\
         p.dele(1); p.dele(2)\n\
         q = poplib.POP3_SSL('127.0.0.1', tls, context=ctx)\n\
         q.user(user)\n\
         out['second'] = err(q.pass_, pw)\n\
         p.file.close(); p.sock.close()\n\
         import time; time.sleep(0.5)\n\
         a = poplib.POP3_SSL('127.0.0.1', tls, context=ctx)\n\
         creds = base64.b64encode(('\\0' + user + '\\0' + pw).encode()).decode()\n\
         out['auth_plain'] = text(a._shortcmd('AUTH PLAIN ' + creds))\n\
         out['stat'] = a.stat()\n\
         a.quit()",
    );
    assert!(
        out["second"].as_str().unwrap().contains("[IN-USE]"),
        "{out}"
    );
    assert!(
        out["auth_plain"].as_str().unwrap().starts_with("+OK"),
        "{out}"
    );
    assert_eq!(
        out["stat"][0],
        json!(3),
        "a dropped connection deletes nothing"
    );
    assert_eq!(d.messages(BOB, "INBOX").len(), 3);
}

#[test]
fn malformed_pop3_input_gets_err_and_long_lines_close() {
    let (_d, s) = setup();
    let r = raw(
        s.port("pop3"),
        "plain",
        json!([
            ["line"],
            ["send", "FROB\r\n"],
            ["line"],
            ["send", "STAT\r\n"],
            ["line"],
            ["send", "PASS secret\r\n"],
            ["line"],
            ["send", "AUTH PLAIN AGJvYgBwdw==\r\n"],
            ["line"],
            ["send", format!("USER {}\r\n", "x".repeat(10_000))],
            ["eof"],
        ]),
    );
    assert!(r[0][0].starts_with("+OK"), "{r:?}");
    for i in [2, 4, 6, 8] {
        assert!(r[i][0].starts_with("-ERR"), "{r:?}");
    }
    assert!(r[8][0].contains("STLS"), "no AUTH before TLS: {r:?}");
    assert!(r[10][0].starts_with("-ERR Line too long"), "{r:?}");
    assert_eq!(r[10].last().unwrap(), "EOF");
    let r = raw(
        s.port("pop3s"),
        "tls",
        json!([
            ["line"],
            [
                "send",
                format!(
                    "USER {BOB}\r\nPASS {PW}\r\nRETR x\r\nTOP 1\r\nDELE 0\r\nLIST 7\r\nQUIT\r\n"
                )
            ],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["eof"],
        ]),
    );
    assert!(r[3][0].starts_with("+OK Logged in"), "{r:?}");
    for i in 4..=7 {
        assert!(r[i][0].starts_with("-ERR"), "{r:?}");
    }
    assert!(r[8][0].starts_with("+OK"), "{r:?}");
}
