#!/usr/bin/env python3
"""Drives an IMAP session with Python's imaplib and prints what every step got, as JSON.

  imap_client.py PORT MODE          (the script, a JSON list of steps, on standard input)
  MODE: plain (STARTTLS port) or tls (implicit TLS)

Each step gives [status, data, untagged], where data and the untagged responses collected
during the step ({"EXISTS": [...], ...}) are strings (literals become [header, body] pairs).
A command that fails with imaplib's error gives ["ERROR", message, untagged].

  ["capability"]                    ["starttls"]
  ["login", USER, PASS]             ["authenticate_plain", USER, PASS]
  ["select", MAILBOX]               ["examine", MAILBOX]
  ["cmd", NAME, ARG...]             any command, arguments as imaplib sends them
  ["call", METHOD, ARG...]          an imaplib method: fetch, search, store, copy, status, …
  ["uid", NAME, ARG...]             UID FETCH/SEARCH/STORE/COPY/MOVE/EXPUNGE
  ["literal", TEXT]                 the next command ends with TEXT as a literal (UTF-8)
  ["append", MAILBOX, FLAGS, DATE_OR_NULL, MESSAGE]
  ["idle_until", SMTP_PORT, FROM, TO, MESSAGE, TIMEOUT]
        enters IDLE, delivers MESSAGE over SMTP (smtplib) and waits for "* n EXISTS";
        data is [seconds from the end of the SMTP transaction to EXISTS, lines seen]
  ["idle_lines", SECONDS]           IDLE for a while; data is the untagged lines seen
  ["sleep", SECONDS]                ["logout"]
"""
import base64
import imaplib
import json
import smtplib
import socket
import ssl
import sys
import time

for extra in ("ID", "MOVE", "ENABLE", "UNSELECT", "NAMESPACE", "GETQUOTA", "GETQUOTAROOT"):
    imaplib.Commands.setdefault(extra, ("AUTH", "SELECTED"))
imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")
imaplib.Commands["CAPABILITY"] = ("NONAUTH", "AUTH", "SELECTED", "LOGOUT")


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [text(x) for x in v]
    if isinstance(v, dict):
        return {k: text(x) for k, x in v.items()}
    return v


def untagged(m):
    out = {k: text(v) for k, v in m.untagged_responses.items()}
    m.untagged_responses.clear()
    return out


def idle_start(m):
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    line = m.readline()
    if not line.startswith(b"+"):
        raise imaplib.IMAP4.error("IDLE refused: %r" % line)
    return tag


def idle_stop(m, tag, seen):
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if not line:
            raise imaplib.IMAP4.error("connection closed in IDLE")
        if line.startswith(tag):
            return line
        seen.append(text(line).strip())


def step(m, s, port):
    op = s[0]
    if op == "capability":
        return m.capability()
    if op == "starttls":
        return m.starttls(ssl_context=ctx())
    if op == "login":
        return m.login(s[1], s[2])
    if op == "authenticate_plain":
        creds = ("\0%s\0%s" % (s[1], s[2])).encode()
        return m.authenticate("PLAIN", lambda _: creds)
    if op == "select":
        return m.select(s[1])
    if op == "examine":
        return m.select(s[1], readonly=True)
    if op == "cmd":
        typ, data = m._simple_command(s[1], *s[2:])
        # imaplib tracks the state only for its own select()/close().
        if typ == "OK" and s[1] in ("SELECT", "EXAMINE"):
            m.state = "SELECTED"
        elif typ == "OK" and s[1] in ("UNSELECT", "CLOSE"):
            m.state = "AUTH"
        return typ, data
    if op == "call":
        return getattr(m, s[1])(*s[2:])
    if op == "uid":
        return m.uid(s[1], *s[2:])
    if op == "literal":
        m.literal = s[1].encode()
        return "OK", []
    if op == "append":
        date = None if s[3] is None else imaplib.Time2Internaldate(s[3])
        return m.append(s[1], s[2], date, s[4].encode())
    if op == "idle_until":
        smtp_port, frm, to, msg, timeout = s[1:6]
        tag = idle_start(m)
        c = smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="mx.sender.example")
        c.sendmail(frm, [to], msg)
        c.quit()
        sent = time.monotonic()
        seen = []
        m.sock.settimeout(timeout)
        try:
            while True:
                line = text(m.readline()).strip()
                seen.append(line)
                if line.endswith("EXISTS"):
                    break
        finally:
            m.sock.settimeout(None)
        elapsed = time.monotonic() - sent
        idle_stop(m, tag, seen)
        return "OK", [elapsed, seen]
    if op == "idle_lines":
        tag = idle_start(m)
        seen = []
        end = time.monotonic() + s[1]
        m.sock.settimeout(0.2)
        while time.monotonic() < end:
            try:
                line = m.readline()
            except (socket.timeout, TimeoutError, ssl.SSLError):
                continue
            if line:
                seen.append(text(line).strip())
        m.sock.settimeout(None)
        idle_stop(m, tag, seen)
        return "OK", seen
    if op == "sleep":
        time.sleep(s[1])
        return "OK", []
    if op == "logout":
        return m.logout()
    raise ValueError("unknown step %r" % op)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    script = json.loads(sys.stdin.read())
    if mode == "tls":
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx())
    else:
        m = imaplib.IMAP4("127.0.0.1", port)
    out = [["GREETING", text(m.welcome), untagged(m)]]
    for s in script:
        try:
            typ, data = step(m, s, port)
            out.append([text(typ), text(data), untagged(m)])
        except (imaplib.IMAP4.error, OSError) as e:
            out.append(["ERROR", str(e), untagged(m)])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
