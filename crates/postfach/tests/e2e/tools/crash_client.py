#!/usr/bin/env python3
"""Load for the crash-safety test. Each mode runs until the server goes away.

  crash_client.py smtp PORT RCPT PREFIX ATTEMPTED ACKED
      sends messages PREFIX-0, PREFIX-1, … over one SMTP session after another; writes an id
      to ATTEMPTED before its DATA and to ACKED once the server said 250 (both fsynced).
  crash_client.py imap PORT USER PASS SEEN PREFIX ATTEMPTED ACKED
      reads INBOX over IMAPS again and again; writes "uid subject" lines it saw to SEEN. In
      each session it first APPENDs a message PREFIX-n, logged to ATTEMPTED before and to
      ACKED once the server said OK, as the smtp mode logs its own.
  crash_client.py verify PORT USER PASS
      prints JSON [[uid, subject, intact], …] for INBOX: intact = the body is exactly what
      the smtp mode sent for that id.
"""
import imaplib
import json
import os
import smtplib
import ssl
import sys


def payload(mid):
    return "".join(f"{mid} line {k:02d} " + "x" * 60 + "\r\n" for k in range(40))


def message(mid, rcpt):
    return (f"From: load@sender.example\r\nTo: {rcpt}\r\nSubject: {mid}\r\n"
            f"Message-ID: <{mid}@sender.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
            + payload(mid))


def append(f, line):
    f.write(line + "\n")
    f.flush()
    os.fsync(f.fileno())


def smtp(port, rcpt, prefix, attempted, acked):
    n = 0
    with open(attempted, "a") as att, open(acked, "a") as ack:
        while True:
            try:
                c = smtplib.SMTP("127.0.0.1", int(port), local_hostname="mx.sender.example",
                                 timeout=10)
                for _ in range(20):
                    mid = f"{prefix}-{n}"
                    n += 1
                    append(att, mid)
                    c.sendmail("load@sender.example", [rcpt], message(mid, rcpt))
                    append(ack, mid)
                c.quit()
            except (OSError, smtplib.SMTPException):
                return


def imap_session(port, user, password):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx, timeout=10)
    m.login(user, password)
    m.select("INBOX")
    return m


def by_seq(m, item):
    """{sequence number: literal} of one FETCH item over all messages (one literal each)."""
    typ, data = m.fetch("1:*", item)
    out = {}
    for d in data:
        if isinstance(d, tuple):
            out[int(d[0].split()[0])] = d[1].decode("utf-8", "replace")
    return out


def uids(m):
    typ, data = m.fetch("1:*", "(UID)")
    out = {}
    for d in data:
        if isinstance(d, bytes) and b"UID" in d:
            seq, rest = d.decode().split(" ", 1)
            out[int(seq)] = int(rest.split("UID ")[1].split(")")[0].split()[0])
    return out


def subjects(m):
    """[(uid, subject)] of the selected folder."""
    typ, data = m.select("INBOX")
    if int(data[0]) == 0:
        return []
    u = uids(m)
    subj = by_seq(m, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [(u[s], subj[s].split(":", 1)[1].strip() if ":" in subj[s] else "") for s in sorted(u)]


def imap(port, user, password, seen, prefix, attempted, acked):
    n = 0
    with open(seen, "a") as f, open(attempted, "a") as att, open(acked, "a") as ack:
        while True:
            try:
                m = imap_session(port, user, password)
                mid = f"{prefix}-{n}"
                n += 1
                append(att, mid)
                typ, _ = m.append("INBOX", None, None, message(mid, user).encode())
                if typ == "OK":
                    append(ack, mid)
                for uid, subject in subjects(m):
                    f.write(f"{uid} {subject}\n")
                f.flush()
                m.logout()
            except (OSError, imaplib.IMAP4.error, ssl.SSLError):
                return


def verify(port, user, password):
    m = imap_session(port, user, password)
    out = []
    pairs = subjects(m)
    if pairs:
        u = uids(m)
        text = by_seq(m, "(BODY.PEEK[TEXT])")
        body_of = {u[s]: text[s] for s in u}
        out = [[uid, subject, body_of.get(uid) == payload(subject)] for uid, subject in pairs]
    m.logout()
    print(json.dumps(out))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"smtp": smtp, "imap": imap, "verify": verify}[mode](*args)
