#!/usr/bin/env python3
"""Drives a running Coffer with redis-py, as an application would.

Usage: redis_py_scenario.py SOCKET TCP_PORT ADMIN_SECRET
Prints one line per check and a closing 'N passed, N failed' line; exits non-zero on failure.
"""
import sys

import redis
from checklist import check, finish

socket_path, tcp_port, admin_secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def expect_error(name, kind, fragment, fn):
    """redis-py strips the first word of an error into the exception class (ERR → ResponseError,
    NOPERM → NoPermissionError, …); check both the class and the rest of the message."""
    try:
        fn()
    except kind as error:
        check(name, fragment in str(error), repr(str(error)))
    except redis.exceptions.RedisError as error:
        check(name, False, f"{type(error).__name__}: {error}")
    else:
        check(name, False, "no error raised")


# redis-py opens with HELLO (protocol 3) carrying AUTH, then CLIENT SETINFO.
admin = redis.Redis(unix_socket_path=socket_path, username="admin", password=admin_secret, protocol=3)
check("admin connects with HELLO 3 AUTH", admin.ping() is True)
support_secret = admin.execute_command("CLIENT.ADD", "py-support", "support").decode()
billing_secret = admin.execute_command("CLIENT.ADD", "py-billing", "billing").decode()

# redis-py 8 gives each socket operation 5 s by default. The 100,000-GET pipeline below sends
# in 6 KB pieces, each waiting for the server to read it; on the PostgreSQL backend (about a
# thousand GETs a second) of a loaded machine one piece once waited longer, so this client
# waits up to 60 s. The check is that the server keeps reading, not how fast.
support = redis.Redis(
    unix_socket_path=socket_path, username="py-support", password=support_secret, protocol=3, socket_timeout=60)
billing = redis.Redis(host="127.0.0.1", port=tcp_port, username="py-billing", password=billing_secret, protocol=2)

check("WHOAMI", support.execute_command("WHOAMI") == [b"py-support", b"support"])
check("PUT", support.execute_command("PUT", "py:1", "name", "Zoë Smith", "email", "zoe@example.org") == 2)
check("GET plain", support.execute_command("GET", "py:1", "name", "email", "phone") == ["Zoë Smith".encode(), b"zoe@example.org", None])
exported = support.execute_command("EXPORT", "py:1")
check("EXPORT is a map under RESP3", exported == {b"name": "Zoë Smith".encode(), b"email": b"zoe@example.org"}, repr(exported))

binary = bytes(range(256)) * 4
check("binary value PUT", support.execute_command("PUT", "py:bin", "postal_address", binary) == 1)
check("binary value round-trips", support.execute_command("GET", "py:bin", "postal_address") == [binary])

check("billing over TCP with RESP2", billing.execute_command("PUT", "py:1", "card.pan", "5555555555554444") == 1)
check("billing sees masked email", billing.execute_command("GET", "py:1", "email", "card.pan") == [b"z***@example.org", b"5555555555554444"])
check("RESP2 EXPORT is a flat list", isinstance(billing.execute_command("EXPORT", "py:1"), list))

expect_error("NOPERM on a denied field", redis.exceptions.NoPermissionError, "may not write field 'name'", lambda: billing.execute_command("PUT", "py:1", "name", "x"))
expect_error("INVALID names the field", redis.exceptions.ResponseError, "INVALID card.pan: fails the Luhn check", lambda: billing.execute_command("PUT", "py:1", "card.pan", "4111111111111112"))
expect_error("unknown command", redis.exceptions.ResponseError, "unknown command 'flushall'", lambda: support.execute_command("FLUSHALL"))
expect_error("wrong arity", redis.exceptions.ResponseError, "wrong number of arguments for 'get'", lambda: support.execute_command("GET", "py:1"))
check("connection survives errors", support.ping() is True)

pipe = support.pipeline(transaction=False)
for i in range(100):
    pipe.execute_command("PUT", f"py:p{i}", "name", f"Person {i}")
for i in range(100):
    pipe.execute_command("GET", f"py:p{i}", "name")
results = pipe.execute(raise_on_error=False)
check("pipeline of 200 commands", results[:100] == [1] * 100 and results[100:] == [[f"Person {i}".encode()] for i in range(100)])

pipe = support.pipeline(transaction=False)
pipe.execute_command("PING")
pipe.execute_command("NOPE")
pipe.execute_command("EXISTS", "py:1")
mixed = pipe.execute(raise_on_error=False)
check("errors inside a pipeline stay in place", mixed[0] is True and isinstance(mixed[1], redis.exceptions.ResponseError) and mixed[2] == 1, repr(mixed))

# redis-py's pipeline() writes every command before it reads a reply: the server must keep
# reading and buffer the replies (up to the output limit), as Redis does.
pipe = support.pipeline(transaction=False)
for _ in range(100_000):
    pipe.execute_command("GET", "py:1", "name")
big = pipe.execute()
check("pipeline of 100,000 GETs written before any reply is read", len(big) == 100_000 and big[-1] == ["Zoë Smith".encode()], f"{len(big)} replies")

# A session is bound to the client record it authenticated against, not to the name: revoking
# the name and adding it again (with another role) ends the old session.
doomed_secret = admin.execute_command("CLIENT.ADD", "py-doomed", "support").decode()
doomed = redis.Redis(unix_socket_path=socket_path, username="py-doomed", password=doomed_secret, protocol=2)
check("session works before the revocation", doomed.execute_command("WHOAMI") == [b"py-doomed", b"support"])
admin.execute_command("CLIENT.REVOKE", "py-doomed")
admin.execute_command("CLIENT.ADD", "py-doomed", "billing")
try:
    answer = doomed.execute_command("WHOAMI")
    check("a re-added name does not inherit the old session", False, repr(answer))
except redis.exceptions.AuthenticationError as error:
    # NOAUTH ends the session; redis-py then reconnects with the old secret, which no longer
    # opens the re-added client: WRONGPASS. Either way, no billing data.
    check("a re-added name does not inherit the old session", True, str(error))
except redis.exceptions.ResponseError as error:
    check("a re-added name does not inherit the old session", "revoked or changed" in str(error), str(error))

check("FIND by email", support.execute_command("FIND", "email", "zoe@example.org") == [b"py:1"])
check("SHRED", admin.execute_command("SHRED", "py:1") == 1)
check("shredded subject reads as absent", support.execute_command("GET", "py:1", "name") == [None])

try:
    redis.Redis(unix_socket_path=socket_path, username="admin", password="wrong", protocol=3).ping()
    check("wrong secret refused", False)
except redis.exceptions.AuthenticationError:
    check("wrong secret refused", True)

finish("redis-py")
