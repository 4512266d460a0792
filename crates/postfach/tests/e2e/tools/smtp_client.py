#!/usr/bin/env python3
"""Drives an SMTP conversation with Python's smtplib and prints every reply as JSON.

  smtp_client.py PORT MODE SCRIPT_JSON   (SCRIPT_JSON "-": read it from standard input)
  MODE: plain (port 25/587 style) or tls (implicit TLS, port 465 style)
  SCRIPT: a list of steps, each answered by [code, "text"]:
    ["ehlo", NAME]              ["helo", NAME]           ["starttls"]
    ["cmd", "MAIL FROM:<a@b>"]  ["login", USER, PASS]    (smtplib's AUTH, PLAIN or LOGIN)
    ["auth", MECH, USER, PASS]  (forces one mechanism)
    ["data", MESSAGE]           (DATA + message; reply of the end of data)
    ["send", FROM, [RCPTS], MESSAGE]  (sendmail: [code, text] of the first refusal, or [250, "ok"])
    ["quit"]
    ["barrier", DIR, N]         (waits until N clients reached this step: races on purpose)
Stops after the connection drops and prints [0, "closed"] for the rest.
"""
import json
import os
import smtplib
import ssl
import sys
import time


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    script = json.loads(sys.stdin.read() if sys.argv[3] == "-" else sys.argv[3])
    if mode == "tls":
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx(), local_hostname="laptop.example")
    else:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="laptop.example")
    out = []
    closed = False
    for step in script:
        if closed:
            out.append([0, "closed"])
            continue
        op = step[0]
        try:
            if op == "ehlo":
                code, msg = s.ehlo(step[1])
            elif op == "helo":
                code, msg = s.helo(step[1])
            elif op == "starttls":
                code, msg = s.starttls(context=ctx())
            elif op == "cmd":
                code, msg = s.docmd(step[1])
            elif op == "login":
                code, msg = s.login(step[1], step[2])
            elif op == "auth":
                s.user, s.password = step[2], step[3]
                mech = step[1].upper()
                auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
                code, msg = s.auth(mech, auth, initial_response_ok=(mech == "PLAIN"))
            elif op == "data":
                code, msg = s.data(step[1].encode())
            elif op == "send":
                refused = s.sendmail(step[1], step[2], step[3].encode())
                if refused:
                    rcpt, (code, msg) = sorted(refused.items())[0]
                else:
                    code, msg = 250, b"ok"
            elif op == "barrier":
                os.makedirs(step[1], exist_ok=True)
                open(os.path.join(step[1], str(os.getpid())), "w").close()
                deadline = time.time() + 30
                while len(os.listdir(step[1])) < step[2] and time.time() < deadline:
                    time.sleep(0.01)
                code, msg = 0, b"barrier"
            elif op == "quit":
                code, msg = s.quit()
                closed = True
            else:
                raise ValueError(op)
        except smtplib.SMTPRecipientsRefused as e:
            rcpt, (code, msg) = sorted(e.recipients.items())[0]
        except smtplib.SMTPSenderRefused as e:
            code, msg = e.smtp_code, e.smtp_error
        except smtplib.SMTPResponseException as e:
            code, msg = e.smtp_code, e.smtp_error
        except (smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLError) as e:
            code, msg = 0, ("closed: %s" % e).encode()
            closed = True
        except smtplib.SMTPNotSupportedError as e:
            code, msg = 0, ("not supported: %s" % e).encode()
        out.append([code, msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
