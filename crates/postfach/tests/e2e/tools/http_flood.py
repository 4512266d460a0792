#!/usr/bin/env python3
"""Opens many idle or half-open HTTP connections, as a slowloris would.

  http_flood.py PORT COUNT SOURCE_PREFIX MODE HOLD_SECONDS
  SOURCE_PREFIX: e.g. 127.0.5 (sources 127.0.5.1 ... 127.0.5.250, used in turn)
  MODE: half (a request line and one header, never finished) or silent (nothing)
Prints "open N" once N connections are open (refused connects are not counted), then, after
HOLD_SECONDS, {"opened": N, "closed_by_server": M} as JSON.
"""
import json
import resource
import socket
import sys
import time


def main():
    port, count, prefix, mode, hold = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                       sys.argv[4], float(sys.argv[5]))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for i in range(count):
        s = socket.socket()
        try:
            s.bind(("%s.%d" % (prefix, 1 + i % 250), 0))
            s.connect(("127.0.0.1", port))
            if mode == "half":
                s.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            socks.append(s)
        except OSError:
            s.close()
    print("open %d" % len(socks), flush=True)
    time.sleep(hold)
    closed = 0
    for s in socks:
        try:
            if s.recv(1 << 16) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print(json.dumps({"opened": len(socks), "closed_by_server": closed}), flush=True)


if __name__ == "__main__":
    main()
