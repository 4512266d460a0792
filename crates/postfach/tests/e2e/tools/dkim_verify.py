#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a message with dkimpy, looking keys up in a JSON map of
TXT records ({"sel._domainkey.example.": "v=DKIM1; ..."}). Prints one line per signature:
"pass SELECTOR DOMAIN" or "fail SELECTOR DOMAIN". Exit status 0 if all passed."""
import json
import re
import sys

import dkim


def dnsfunc_from(path):
    """dkimpy's DNS lookup, answered from a JSON map of TXT records."""
    records = json.load(open(path))

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        v = records.get(name) or records.get(name.rstrip(".") + ".")
        return v.encode() if v else None

    return dnsfunc


def main():
    message = open(sys.argv[1], "rb").read()
    dnsfunc = dnsfunc_from(sys.argv[2])

    count = 0
    ok = True
    d = dkim.DKIM(message)
    for i in range(len([h for h in d.headers if h[0].lower() == b"dkim-signature"])):
        sig = [h for h in d.headers if h[0].lower() == b"dkim-signature"][i][1].decode()
        sel = re.search(r"\bs=([^;\s]+)", sig).group(1)
        dom = re.search(r"\bd=([^;\s]+)", sig).group(1)
        good = d.verify(idx=i, dnsfunc=dnsfunc)
        print("%s %s %s" % ("pass" if good else "fail", sel, dom))
        ok = ok and good
        count += 1
    sys.exit(0 if ok and count > 0 else 1)


if __name__ == "__main__":
    main()
