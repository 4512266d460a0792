#!/usr/bin/env python3
"""Validates the ARC chain of a message with dkimpy (RFC 8617), looking keys up in a JSON map
of TXT records ({"sel._domainkey.example.": "v=DKIM1; ..."}). Prints "CV REASON" (cv is pass,
fail or none) and the sealers' domains. Exit status 0 if the chain passed."""
import re
import sys

import dkim

from dkim_verify import dnsfunc_from


def main():
    message = open(sys.argv[1], "rb").read()
    cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc_from(sys.argv[2]))
    cv = cv.decode() if isinstance(cv, bytes) else str(cv)
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", message.split(b"\r\n\r\n", 1)[0])
    sealers = re.findall(rb"(?im)^ARC-Seal:.*?\bd=([^;\s]+)", unfolded)
    print(cv, reason)
    print(" ".join(s.decode() for s in sealers))
    sys.exit(0 if cv == "pass" else 1)


if __name__ == "__main__":
    main()
