#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus (Tests/Fuzz/corpus): one file per seed, named by content.
Seeds cover every command in docs/PROTOCOL.md in both framings, and the malformed cases of the
hostile-input suite, so the fuzzer starts from every parser path. Re-run after adding commands."""
import hashlib
import os

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def resp(*words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w.encode() if isinstance(w, str) else w
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


commands = [
    ["AUTH", "billing-job", "0" * 64], ["HELLO", "3", "AUTH", "admin", "s3cret", "SETNAME", "x"], ["HELLO"],
    ["PING"], ["PING", "hi"], ["ECHO", "x"], ["QUIT"], ["WHOAMI"],
    ["PUT", "cust-1", "name", "Ada Lovelace", "email", "Ada@Example.com", "phone", "+44 20 7946 0958"],
    ["PUT", "cust-1", "card.pan", "4111111111111111", "card.expiry", "12/30", "card.holder", "A LOVELACE"],
    ["PUT", "cust-1", "postal_address", "1 Main St\nLondon", "birthday", "1815-12-10", "gender", "female"],
    ["PUT", "cust-1", "consent.marketing", "yes"], ["PUT", "cust-1", "cvv", "123"],
    ["GET", "cust-1", "name", "email", "card.pan"], ["EXPORT", "cust-1"], ["DEL", "cust-1", "phone"],
    ["EXISTS", "cust-1"], ["FIND", "email", "ada@example.com"], ["FIND", "phone", "+442079460958"],
    ["SHRED", "cust-1"], ["CLIENT.ADD", "job", "billing"], ["CLIENT.LIST"], ["CLIENT.REVOKE", "job"],
    ["CLIENT", "SETINFO", "LIB-NAME", "redis-py"], ["CLIENT", "SETNAME", "n"], ["CLIENT", "GETNAME"],
    ["CLIENT", "ID"], ["COMMAND"], ["COMMAND", "DOCS"], ["KEYS.ROTATE"], ["KEYS.STATUS"],
    ["KEYS.RETIRE", "1"], ["REKEY", "cust-1"], ["AUDIT.TAIL", "10"], ["AUDIT.VERIFY"], ["AUDIT.EXPORT", "5"],
    ["GET", "c" * 128, "name"], ["GET", "c" * 129, "name"], ["PUT", "x", "name", b"\x00\xff\xfe"],
    ["SEAL.STATUS"], ["UNSEAL", "coffer-share-1-2-" + "ab" * 32 + "-0011aabb"], ["UNSEAL", "RESET"], ["SEAL"],
]
seeds = [resp(*c) for c in commands]
seeds += [" ".join(c if isinstance(c, str) else "x" for c in cmd).encode() + b"\r\n" for cmd in commands[:20]]
seeds += [
    b"*-10\r\n", b"*3000000000\r\n", b"*1\r\n$blabla\r\n", b"*1\r\n$-10\r\n", b"*1\r\n$2000000000\r\n",
    b"*1\r\nfoo\r\n", b"*1\r\n:1\r\n", b"*2\r\n*1\r\n$1\r\na\r\n", b"*0\r\n", b"\r\n", b"\n\n\n",
    b'PUT c-1 name "unbalanced\r\n', b"PUT c-1 name 'x\r\n", b'PUT "a\\x41\\n" \'b\\\'c\' "\\xZZ"\r\n',
    b"PING\x00PONG\r\n", b"PUT c-1 name \xff\xfe\xc3\x28\r\n", b"*1\r\n$4\r\nPI", b"*99999999999999999999\r\n",
    b"*1\r\n$9223372036854775807\r\n", b"*1000000\r\n", b"$4\r\nPING\r\n", b"+PING\r\n", b"*1\r\n$4\r\nPINGxx",
    b"AUTH " + b"a" * 5000 + b"\r\n", resp("PING") * 50, b'"" \'\' "a"b\r\n', b"*1\r\n$0\r\n\r\n",
    b"%1\r\n+a\r\n:1\r\n", b"-ERR x\r\n", b"_\r\n", b":9223372036854775807\r\n", b"$9223372036854775807\r\n",
]
# Bare values, for the field validators and masks (each input is also tried as every field's value).
seeds += [v.encode() for v in [
    "Ada@Example.com", "a@b.co", "first.last+tag@sub.example.org", "@x", "a@", "a@@b", "A" * 64 + "@example.com",
    "+44 20 7946 0958", "+1 (555) 000-1111", "0044 20", "+", "+999999999999999999999",
    "1815-12-10", "2000-02-29", "1900-02-29", "9999-12-31", "0000-01-01", "2024-13-01", "1815-12-1x",
    "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "411111111111111111111", "0000000000000",
    "12/30", "01/2031", "13/30", "1/30", "yes", "No", "YES ", "female", "x" * 65,
    "Jane Q. Doe", "  ", "Ünïcödé Nämé", "李 小龙", "1 Main St\nLondon\nEC1A 1BB", "\u0000", "O'Brien-Smith",
]]
seeds += [b"\xff\xfe", b"\xc3\x28", b"\xe2\x82", "é".encode("utf-16")]
os.makedirs(here, exist_ok=True)
for seed in seeds:
    with open(os.path.join(here, hashlib.sha1(seed).hexdigest()[:16]), "wb") as f:
        f.write(seed)
print(f"{len(seeds)} seeds in {here}")
