#!/usr/bin/env python3
"""Writes an Outlook-style message with a winmail.dat (TNEF, MS-OXTNEF) holding the given
files, after checking with Debian's independent `tnef` tool that the blob unpacks to them.

  tnef_mail.py FROM TO SUBJECT NAME=TEXT...      prints the message (CRLF) on stdout
"""
import base64
import os
import struct
import subprocess
import sys
import tempfile


def attr(level, ident, data):
    return (struct.pack("<BII", level, ident, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def tnef(files):
    date = struct.pack("<7H", 2026, 11, 23, 10, 0, 0, 1)
    out = struct.pack("<IH", 0x223E9F78, 1)
    out += attr(1, 0x00089006, b"\x00\x00\x01\x00")                   # attTnefVersion
    out += attr(1, 0x00069007, struct.pack("<II", 1252, 0))           # attOemCodepage
    out += attr(1, 0x00078008, b"IPM.Microsoft Mail.Note\x00")        # attMessageClass
    for name, data in files:
        out += attr(2, 0x00069002, struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0))
        out += attr(2, 0x00018010, name.encode("cp1252") + b"\x00")    # attAttachTitle
        out += attr(2, 0x00038012, date)                               # attAttachCreateDate
        out += attr(2, 0x00038013, date)                               # attAttachModifyDate
        out += attr(2, 0x0006800F, data)                               # attAttachData
        # attAttachment: MAPI properties; one, PR_ATTACH_LONG_FILENAME (PT_STRING8).
        long = name.encode("cp1252") + b"\x00"
        long += b"\x00" * (-len(long) % 4)
        props = struct.pack("<IHHII", 1, 0x001E, 0x3707, 1, len(name) + 1) + long
        out += attr(2, 0x00069005, props)
    return out


def main():
    sender, to, subject = sys.argv[1:4]
    files = [(a.split("=", 1)[0], a.split("=", 1)[1].encode()) for a in sys.argv[4:]]
    blob = tnef(files)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "winmail.dat")
        with open(path, "wb") as f:
            f.write(blob)
        listed = subprocess.run(["tnef", "-t", path], capture_output=True, text=True, check=True)
        # "short name | long name" per file
        names = [line.split("|")[-1].strip() for line in listed.stdout.splitlines()]
        assert names == [n for n, _ in files], f"tnef lists {names}"
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    msg = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <tnef-1@corp.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outlook-b1\"\r\n\r\n"
        "--outlook-b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee attached.\r\n"
        "--outlook-b1\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
        "Content-Disposition: attachment; filename=\"winmail.dat\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--outlook-b1--\r\n"
    )
    sys.stdout.write(msg)


if __name__ == "__main__":
    main()
