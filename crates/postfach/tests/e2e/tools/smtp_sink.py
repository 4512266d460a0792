#!/usr/bin/env python3
"""An SMTP server standing in for a remote MX (aiosmtpd). Saves what it accepts as
OUTDIR/N.eml plus OUTDIR/N.json (envelope), and can refuse on purpose:

  smtp_sink.py OUTDIR MODE [CERT KEY]
  MODE: accept | tempfail | permfail | tempfail-then-accept:N
  With CERT and KEY (PEM), STARTTLS is offered.

tempfail answers 451 to RCPT, permfail 550 to RCPT; tempfail-then-accept:N refuses the first
N transactions with 451 and accepts afterwards. Every RCPT attempt is appended to
OUTDIR/attempts.log. Prints the port it listens on.
"""
import asyncio
import json
import os
import socket
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, outdir, mode):
        self.outdir = outdir
        self.mode = mode
        self.count = 0
        self.transactions = 0
        self.failing = 0
        if mode.startswith("tempfail-then-accept:"):
            self.failing = int(mode.split(":")[1])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(os.path.join(self.outdir, "attempts.log"), "a") as f:
            f.write(address + "\n")
        if self.mode == "tempfail":
            return "451 4.3.0 Try again later"
        if self.mode == "permfail":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if self.failing > 0 and self.transactions < self.failing:
            return "451 4.3.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.transactions += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.transactions += 1
        self.count += 1
        base = os.path.join(self.outdir, str(self.count))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": session.ssl is not None}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Ok: queued"


def main():
    outdir, mode = sys.argv[1], sys.argv[2]
    tls = None
    if len(sys.argv) > 4:
        import ssl
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    controller = Controller(Handler(outdir, mode), hostname="127.0.0.1", port=port,
                            decode_data=False, enable_SMTPUTF8=True, tls_context=tls)
    controller.start()
    print(port, flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
