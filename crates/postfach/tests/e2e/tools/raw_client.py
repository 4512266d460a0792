#!/usr/bin/env python3
"""A line-oriented raw client for protocol abuse tests (IMAP, POP3): sends exactly what the
script says and reports every line it reads, as JSON.

  raw_client.py PORT MODE      (plain or tls; the script, a JSON list, on standard input)

Steps (each gives a list of lines read, or [] for sends):
  ["send", TEXT]          send TEXT as is (UTF-8; "\\r\\n" written out in JSON)
  ["repeat", TEXT, N]     send TEXT N times
  ["line"]                read one line
  ["until", PREFIX]       read lines up to and including one that starts with PREFIX
  ["eof"]                 read until the server closes; the last element is "EOF" or "TIMEOUT"
  ["starttls"]            start TLS on the connection (after the server said go ahead)
  ["close"]               close the connection
  ["sleep", SECONDS]
"""
import json
import socket
import ssl
import sys
import time


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class Conn:
    def __init__(self, port, tls):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            self.sock = ctx().wrap_socket(self.sock)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    script = json.loads(sys.stdin.read())
    c = Conn(port, mode == "tls")
    out = []
    for step in script:
        op = step[0]
        got = []
        try:
            if op == "send":
                c.sock.sendall(step[1].encode())
            elif op == "repeat":
                c.sock.sendall(step[1].encode() * step[2])
            elif op == "line":
                got.append(c.line())
            elif op == "until":
                while True:
                    line = c.line()
                    got.append(line)
                    if line.startswith(step[1]):
                        break
            elif op == "eof":
                try:
                    while True:
                        got.append(c.line())
                except EOFError:
                    got.append("EOF")
            elif op == "starttls":
                c.sock = ctx().wrap_socket(c.sock)
                c.buf = b""
            elif op == "close":
                c.sock.close()
            elif op == "sleep":
                time.sleep(step[1])
        except EOFError:
            got.append("EOF")
        except (socket.timeout, TimeoutError):
            got.append("TIMEOUT")
        except (OSError, ssl.SSLError) as e:
            got.append("ERROR %s" % e)
        out.append(got)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
