#!/usr/bin/env python3
"""Two imaplib sessions on one mailbox, and SMTP deliveries into it, at the same time.

  imap_two.py IMAPS_PORT SMTP_PORT USER PASSWORD

1. Each session's changes reach the other: A sets \\Answered, B's NOOP reports the FETCH;
   A expunges, B's NOOP reports the EXPUNGE (at a moment B allows it). A marks a message
   \\Deleted, B takes the flag away, A's EXPUNGE (without a NOOP first) must keep it.
   A and then B (from a view that does not know of A's change) add a flag each: both stay.
   A third session has a folder selected that B deletes: its next command gets BYE.
2. Then both sessions store flags, expunge, and NOOP in parallel while 20 messages arrive
   over SMTP. At the end both sessions NOOP and FETCH 1:* (UID FLAGS) by sequence number.

Prints JSON: {"answered": [untagged FETCH seen by B], "expunge": [untagged EXPUNGE seen by B],
"views": {"a": [[seq, uid, flags]...], "b": [...]}, "exists": {"a": n, "b": n}}.
"""
import imaplib
import json
import random
import re
import smtplib
import ssl
import sys
import threading
import time


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def session(port, user, password):
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx())
    m.login(user, password)
    m.select("INBOX")
    m.untagged_responses.clear()
    return m


def take(m, name):
    v = m.untagged_responses.pop(name, [])
    return [x.decode() if isinstance(x, bytes) else repr(x) for x in v]


FETCH = re.compile(rb"(\d+) \(UID (\d+) FLAGS \(([^)]*)\)\)")


def view(m):
    typ, data = m.fetch("1:*", "(UID FLAGS)")
    out = []
    for item in data:
        if item is None:
            continue
        hit = FETCH.match(item if isinstance(item, bytes) else item[0])
        if hit:
            flags = sorted(f for f in hit.group(3).decode().split() if f != "\\Recent")
            out.append([int(hit.group(1)), int(hit.group(2)), flags])
    return out


def deliver(smtp_port, user, n):
    for i in range(n):
        c = smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="mx.sender.example")
        c.sendmail("load@sender.example", [user],
                   "From: load@sender.example\r\nSubject: load %d\r\n\r\nbody %d\r\n" % (i, i))
        c.quit()


def churn(m, lock_step, seed, flag):
    rnd = random.Random(seed)
    for _ in range(25):
        m.untagged_responses.clear()
        typ, data = m.uid("SEARCH", "ALL")
        uids = data[0].split()
        if uids:
            uid = rnd.choice(uids)
            if rnd.random() < 0.2:
                m.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
                m.expunge()
            else:
                m.uid("STORE", uid, "+FLAGS", "(%s)" % flag)
        m.noop()
        time.sleep(rnd.random() * 0.02)


def main():
    port, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    a = session(port, user, password)
    b = session(port, user, password)
    out = {}

    # 1. One session's changes, told to the other.
    typ, data = a.uid("SEARCH", "ALL")
    first = data[0].split()[0]
    a.uid("STORE", first, "+FLAGS", "(\\Answered)")
    b.noop()
    out["answered"] = take(b, "FETCH")
    a.uid("STORE", first, "+FLAGS", "(\\Deleted)")
    a.expunge()
    b.noop()
    out["expunge"] = take(b, "EXPUNGE")
    typ, data = a.uid("SEARCH", "ALL")
    second = data[0].split()[0]
    a.uid("STORE", second, "+FLAGS.SILENT", "(\\Deleted)")
    b.uid("STORE", second, "-FLAGS.SILENT", "(\\Deleted)")
    a.expunge()
    typ, data = b.uid("SEARCH", "ALL")
    out["undeleted_survives"] = second.decode() in data[0].decode().split()
    # A flag change from a view that another session's change made stale adds to that change
    # instead of overwriting it, and the STORE's FETCH shows both.
    a.uid("STORE", second, "+FLAGS", "(\\Flagged)")
    typ, data = b.uid("STORE", second, "+FLAGS", "($Work)")
    out["stale_store"] = [x.decode() for x in data if isinstance(x, bytes)]
    typ, data = a.uid("FETCH", second, "(FLAGS)")
    out["stale_store_stored"] = data[0].decode()
    c = session(port, user, password)
    c.create("Temp")
    c.select("Temp")
    b.delete("Temp")
    try:
        c.noop()
        out["deleted_selected"] = "no BYE"
    except imaplib.IMAP4.abort as e:
        out["deleted_selected"] = str(e)

    # 2. Everything at once.
    threads = [
        threading.Thread(target=deliver, args=(smtp_port, user, 20)),
        threading.Thread(target=churn, args=(a, None, 1, "\\Seen")),
        threading.Thread(target=churn, args=(b, None, 2, "\\Flagged")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Deliveries are acknowledged once durable; the queue puts them away right after. Wait
    # until the views stop changing.
    last = None
    for _ in range(40):
        time.sleep(0.5)
        for m in (a, b):
            m.noop()
        now = {"a": view(a), "b": view(b)}
        if now == last:
            break
        last = now
    out["views"] = last
    out["exists"] = {
        "a": int((a.select("INBOX", readonly=True)[1][0])),
        "b": int((b.select("INBOX", readonly=True)[1][0])),
    }
    # 3. APPEND into the selected folder: the appending session hears of it at once (EXISTS,
    # RFC 9051 §6.3.12) and, being the first told, has it as \Recent (RFC 3501 §2.3.2); the
    # other session hears of it at its next command, without \Recent. Then B appends first,
    # so that A's next APPEND finds a change it has not seen: both are reported to A, and
    # only its own message is \Recent for A.
    a.select("INBOX")
    b.select("INBOX")
    a.untagged_responses.clear()
    b.untagged_responses.clear()

    def appended(m, subject):
        typ, data = m.append("INBOX", None, None,
                             ("Subject: %s\r\n\r\nappended\r\n" % subject).encode())
        return re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()

    def flags(m, uid):
        typ, data = m.uid("FETCH", uid, "(FLAGS)")
        return data[0].decode()

    before = int(a.select("INBOX")[1][0])
    a.untagged_responses.clear()
    own = appended(a, "own")
    out["append"] = {"before": before, "exists": take(a, "EXISTS"), "recent": take(a, "RECENT"),
                     "own_flags": flags(a, own)}
    b.noop()
    out["append"]["other_exists"] = take(b, "EXISTS")
    out["append"]["other_flags"] = flags(b, own)
    theirs = appended(b, "theirs")
    a.untagged_responses.clear()
    own2 = appended(a, "own again")
    out["append"]["after_other"] = {"exists": take(a, "EXISTS"), "recent": take(a, "RECENT"),
                                    "own_flags": flags(a, own2), "theirs_flags": flags(a, theirs)}
    a.logout()
    b.logout()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
