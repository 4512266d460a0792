#!/usr/bin/env python3
"""DNS for one scenario of the openspf RFC 7208 test suite (dnslib, UDP on 127.0.0.1; prints
the port). Standard input: the scenario's "zonedata" as JSON. Served as a TXT-only SPF
implementation sees the suite (its README: records of the obsolete type SPF are copied to TXT
for names that have no TXT of their own):

  {"TXT"|"SPF": str | [str, ...]}  one TXT record of one or more strings; "NONE": no record
  {"A"|"AAAA"|"PTR"|"CNAME": str}, {"MX": [pref, host]}
  "TIMEOUT"                         queries for the name that no record before it answers
                                    get no reply at all; {"TYPE": "TIMEOUT"} for one type
  names not in the zone are NXDOMAIN, except names under "error." (no reply)
"""
import json
import socket
import sys

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord


def records(zone):
    out = {}
    for name, entries in zone.items():
        items = []
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        generated = []
        for e in entries:
            if e == "TIMEOUT":
                items.append(("TIMEOUT", None))
                continue
            for t, v in e.items():
                if t == "SPF":
                    if not has_txt and v not in ("NONE", []):
                        generated.append(("TXT", v))
                    continue
                # "NONE" is no record; a TXT record of no strings cannot be encoded (RFC 1035
                # §3.3.14 asks for at least one), so it is left out as well.
                if v == "NONE" or v == []:
                    continue
                items.append((t, v))
        out[name.lower().rstrip(".")] = items + generated
    return out


def answer(zone, data):
    q = DNSRecord.parse(data)
    # The raw labels: str() would escape the spaces and other octets some names hold.
    name = b".".join(q.q.qname.label).decode("latin-1").lower()
    qtype = QTYPE[q.q.qtype]
    reply = q.reply()
    entries = zone.get(name)
    if entries is None:
        if name.startswith("error.") or ".error." in name:
            return None
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()
    matched = False
    for t, v in entries:
        if t == "TIMEOUT":
            if not matched:
                return None
            continue
        if v == "TIMEOUT":
            if t == qtype:
                return None
            continue
        if t == "CNAME":
            reply.add_answer(RR(q.q.qname, QTYPE.CNAME, rdata=CNAME(v), ttl=60))
            for t2, v2 in zone.get(v.lower().rstrip("."), []):
                if t2 == qtype and t2 != "TIMEOUT":
                    reply.add_answer(RR(v, QTYPE.reverse[t2], rdata=rdata(t2, v2), ttl=60))
            matched = True
            continue
        if t != qtype:
            continue
        matched = True
        reply.add_answer(RR(q.q.qname, QTYPE.reverse[t], rdata=rdata(t, v), ttl=60))
    return reply.pack()


def rdata(t, v):
    if t == "TXT":
        strings = v if isinstance(v, list) else [v]
        # A character-string holds at most 255 octets (RFC 1035 §3.3.14): longer ones (DKIM
        # keys) are split, as zone files do.
        chunks = [s.encode()[i:i + 255] for s in strings for i in range(0, max(len(s.encode()), 1), 255)]
        return TXT(chunks)
    if t == "A":
        return A(v)
    if t == "AAAA":
        return AAAA(v)
    if t == "PTR":
        return PTR(v)
    if t == "MX":
        return MX(v[1], int(v[0]))
    raise ValueError(t)


def main():
    zone = records(json.load(sys.stdin))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    while True:
        data, peer = sock.recvfrom(65535)
        try:
            out = answer(zone, data)
        except Exception as e:  # a malformed query: no answer, but keep serving
            print("spf_suite_dns:", e, file=sys.stderr)
            out = None
        if out is not None:
            sock.sendto(out, peer)


if __name__ == "__main__":
    main()
