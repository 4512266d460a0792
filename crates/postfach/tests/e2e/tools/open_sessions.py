#!/usr/bin/env python3
"""Opens one logged-in session of each mailbox protocol and waits for the server to end them.

  open_sessions.py IMAPS_PORT POP3S_PORT SIEVE_PORT SUBMISSION_PORT LOGIN PASSWORD
Prints "ready" once IMAP is in IDLE, POP3 and ManageSieve are logged in and SMTP is
authenticated; then waits for a line on standard input, and prints as JSON, per protocol,
the first line the server sent on its own (or "silent" after 15 s) and after how many seconds.
"""
import base64
import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import sys
import threading
import time


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def sieve_session(port, login, password):
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    f = raw.makefile("rb")

    def until_ok():
        while True:
            line = f.readline()
            if not line or line.startswith((b"OK", b"NO", b"BYE")):
                return line

    until_ok()
    raw.sendall(b"STARTTLS\r\n")
    until_ok()
    tls = ctx().wrap_socket(raw, server_hostname="localhost")
    f = tls.makefile("rb")
    until_ok()
    token = base64.b64encode(b"\0" + login.encode() + b"\0" + password.encode()).decode()
    tls.sendall(('AUTHENTICATE "PLAIN" "%s"\r\n' % token).encode())
    line = until_ok()
    assert line.startswith(b"OK"), line
    return tls, f


def main():
    imaps, pop3s, sieve, submission = (int(p) for p in sys.argv[1:5])
    login, password = sys.argv[5], sys.argv[6]

    imap = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx(), timeout=15)
    imap.login(login, password)
    imap.select("INBOX")
    imap.send(b"i1 IDLE\r\n")
    assert imap.readline().startswith(b"+"), "IDLE"

    pop = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx(), timeout=15)
    pop.user(login)
    pop.pass_(password)

    sieve_sock, sieve_file = sieve_session(sieve, login, password)

    smtp = smtplib.SMTP("127.0.0.1", submission, local_hostname="laptop.example", timeout=15)
    smtp.starttls(context=ctx())
    smtp.login(login, password)

    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    out = {}

    def wait(name, read):
        try:
            line = read()
            text = line.decode("utf-8", "replace").strip() if isinstance(line, bytes) else str(line)
        except (OSError, smtplib.SMTPException) as e:
            text = "error: %s" % e
        out[name] = [text or "closed", round(time.monotonic() - start, 2)]

    def smtp_reply():
        code, msg = smtp.getreply()
        return "%d %s" % (code, msg.decode())

    ts = [
        threading.Thread(target=wait, args=("imap", imap.readline)),
        threading.Thread(target=wait, args=("pop3", pop.file.readline)),
        threading.Thread(target=wait, args=("managesieve", sieve_file.readline)),
        threading.Thread(target=wait, args=("smtp", smtp_reply)),
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
