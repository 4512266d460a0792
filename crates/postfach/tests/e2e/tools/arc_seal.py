#!/usr/bin/env python3
"""Seals a message (standard input) with dkimpy's ARC signer, as a mailing list would:
  arc_seal.py KEY.pem DOMAIN SELECTOR
The message must carry the sealer's own Authentication-Results (authserv-id DOMAIN); they
become its ARC-Authentication-Results. Writes the sealed message to standard output."""
import sys

import dkim


def main():
    key, domain, selector = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    message = sys.stdin.buffer.read()
    headers = dkim.arc_sign(message, selector, domain, open(key, "rb").read(), domain,
                            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    if not headers:
        sys.exit("no ARC set made (no Authentication-Results of the sealer?)")
    sys.stdout.buffer.write(b"".join(headers) + message)


if __name__ == "__main__":
    main()
