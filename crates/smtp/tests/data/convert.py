#!/usr/bin/env python3
"""Converts the openspf.org RFC 7208 test suite (rfc7208-tests.yml, from pyspf 2.0.14 on PyPI,
licence in rfc7208-tests.LICENSE) to rfc7208-tests.json, which the SPF conformance test reads
(no YAML parser in the build). Run from this directory: python3 convert.py"""
import json

import yaml

with open("rfc7208-tests.yml") as f:
    docs = list(yaml.safe_load_all(f))
with open("rfc7208-tests.json", "w") as f:
    json.dump(docs, f, indent=1, sort_keys=True)
    f.write("\n")
