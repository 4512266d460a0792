#!/usr/bin/env python3
"""A tiny authoritative DNS server for tests (dnslib): serves the records of a JSON file,
answers NXDOMAIN for unknown names, on UDP and TCP of one port on 127.0.0.1. Prints the port.

JSON: {"name.example.": [["TXT", "v=spf1 -all"], ["MX", "10 mx.name.example."], ["A", "127.0.0.1"]]}
A name with ["TIMEOUT", ""] gets no answer at all (a sender's DNS that never replies).
"""
import json
import socket
import sys
import time

from dnslib import A, AAAA, MX, QTYPE, RCODE, RR, TXT, DNSLabel
from dnslib.server import BaseResolver, DNSError, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, records):
        self.records = {DNSLabel(k.lower()): v for k, v in records.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        entries = self.records.get(DNSLabel(str(qname).lower()))
        if entries is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if any(rtype == "TIMEOUT" for rtype, _ in entries):
            raise DNSError("no answer, on purpose")
        for rtype, value in entries:
            if rtype != qtype:
                continue
            if rtype == "TXT":
                data = value.encode()
                # One TXT record, split into strings of at most 255 octets (RFC 1035 3.3.14).
                rdata = TXT([data[i:i + 255] for i in range(0, len(data), 255)] or [b""])
            elif rtype == "MX":
                pref, host = value.split()
                rdata = MX(host, int(pref))
            elif rtype == "A":
                rdata = A(value)
            elif rtype == "AAAA":
                rdata = AAAA(value)
            else:
                continue
            reply.add_answer(RR(qname, QTYPE.reverse[rtype], rdata=rdata, ttl=60))
        return reply


def free_port():
    # A port free for both UDP and TCP.
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            t.close()
            u.close()
            return port
        except OSError:
            u.close()
            t.close()


def main():
    with open(sys.argv[1]) as f:
        records = json.load(f)
    resolver = ZoneResolver(records)
    port = free_port()
    # No query log: nothing reads our stdout after the port line, and a full pipe would block.
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    udp = DNSServer(resolver, port=port, address="127.0.0.1", logger=quiet)
    tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=quiet)
    udp.start_thread()
    tcp.start_thread()
    print(port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
