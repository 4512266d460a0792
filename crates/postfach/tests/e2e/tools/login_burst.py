#!/usr/bin/env python3
"""Fires many Manager API logins at once (threads), from several loopback source addresses.

  login_burst.py URL LOGINS_JSON PASSWORD COUNT SOURCES THREADS
  LOGINS_JSON: a JSON list of login spellings, used in turn
  SOURCES: comma-separated source addresses (127.0.0.x), used in turn
Prints {"STATUS": count, ...} as JSON.
"""
import http.client
import json
import sys
import threading
import urllib.parse
from collections import Counter


def main():
    url, logins, password = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    count, sources, threads = int(sys.argv[4]), sys.argv[5].split(","), int(sys.argv[6])
    u = urllib.parse.urlsplit(url)
    statuses = Counter()
    lock = threading.Lock()
    jobs = list(range(count))

    def worker():
        while True:
            with lock:
                if not jobs:
                    return
                i = jobs.pop()
            body = json.dumps({"login": logins[i % len(logins)], "password": password})
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=60,
                                           source_address=(sources[i % len(sources)], 0))
            try:
                c.request("POST", "/api/v1/auth/login", body,
                          {"Content-Type": "application/json"})
                status = str(c.getresponse().status)
            except OSError as e:
                status = "error: %s" % e
            finally:
                c.close()
            with lock:
                statuses[status] += 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(statuses))


if __name__ == "__main__":
    main()
