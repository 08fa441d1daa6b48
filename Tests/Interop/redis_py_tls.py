#!/usr/bin/env python3
"""Drives Coffer's TLS listener with redis-py (ssl=True), as an application would.

Usage: redis_py_tls.py PORT CA_PEM ADMIN_SECRET [CLIENT_CERT CLIENT_KEY]
With a client certificate the server is expected to require mutual TLS.
Prints one line per check and a closing 'N passed, N failed' line; exits non-zero on failure.
"""
import ssl
import sys

import redis
from checklist import check, finish

port, ca, admin_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client_cert, client_key = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
mutual = client_cert is not None


def connect(**overrides):
    options = dict(
        host="localhost", port=port, ssl=True, ssl_ca_certs=ca, ssl_cert_reqs="required",
        ssl_check_hostname=True, username="admin", password=admin_secret, protocol=3,
        socket_timeout=10, ssl_certfile=client_cert, ssl_keyfile=client_key,
    )
    options.update(overrides)
    return redis.Redis(**options)


def fails(name, fn):
    try:
        fn()
    except (redis.exceptions.ConnectionError, ssl.SSLError, OSError) as error:
        check(name, True)
        return str(error)
    except Exception as error:  # any other failure is still not a success, but say what it was
        check(name, False, f"unexpected {type(error).__name__}: {error}")
    else:
        check(name, False, "connected")


admin = connect()
check("ssl=True with HELLO 3 AUTH connects", admin.ping() is True)
check("WHOAMI over TLS", admin.execute_command("WHOAMI") in (b"admin admin", "admin admin", [b"admin", b"admin"]),
      repr(admin.execute_command("WHOAMI")))
support_secret = admin.execute_command("CLIENT.ADD", "py-tls-support", "support")
support_secret = support_secret.decode() if isinstance(support_secret, bytes) else support_secret
check("CLIENT.ADD over TLS", len(support_secret) == 64)
support = connect(username="py-tls-support", password=support_secret)
check("PUT over TLS", support.execute_command("PUT", "tls-1", "name", "Ada Lovelace") in (b"OK", "OK", True))
got = support.execute_command("GET", "tls-1", "name")
check("GET over TLS", got == [b"Ada Lovelace"], repr(got))
pipe = support.pipeline(transaction=False)
for i in range(200):
    pipe.execute_command("PUT", f"tls-p{i}", "name", f"Person {i}")
for i in range(200):
    pipe.execute_command("GET", f"tls-p{i}", "name")
replies = pipe.execute()
check("200 PUT + 200 GET pipelined over TLS (many TLS records)",
      replies[200:] == [[f"Person {i}".encode()] for i in range(200)], repr(replies[:2] + replies[200:202]))
fails("a client that does not trust the server's CA is refused", lambda: connect(ssl_ca_certs=client_cert or __file__).ping())
try:
    connect(ssl=False).ping()
except redis.exceptions.ResponseError as error:
    check("a plaintext redis-py on the TLS port gets 'requires TLS'", "requires TLS" in str(error), str(error))
except redis.exceptions.ConnectionError as error:
    check("a plaintext redis-py on the TLS port fails", True)
else:
    check("a plaintext redis-py on the TLS port fails", False, "connected")
if mutual:
    fails("mutual TLS: no client certificate is refused", lambda: connect(ssl_certfile=None, ssl_keyfile=None).ping())

finish("redis-py tls")
