#!/usr/bin/env python3
"""Purpose of access through redis-py pipelines, against a server started with a policy in which
support reads contact plain only for `support` and `subject-request` (masked otherwise) and an
`analyst` role must state a purpose.

Usage: redis_py_purposes.py SOCKET ADMIN_SECRET
Prints one line per check and a closing 'N passed, N failed' line; exits non-zero on failure.
"""
import json
import sys

import redis
from checklist import check, finish

socket_path, admin_secret = sys.argv[1], sys.argv[2]

admin = redis.Redis(unix_socket_path=socket_path, username="admin", password=admin_secret, protocol=2)
secrets = {name: admin.execute_command("CLIENT.ADD", f"py-{name}", name).decode() for name in ("support", "analyst")}
support = redis.Redis(unix_socket_path=socket_path, username="py-support", password=secrets["support"], protocol=2)
analyst = redis.Redis(unix_socket_path=socket_path, username="py-analyst", password=secrets["analyst"], protocol=2)

check("PUT with a purpose", support.execute_command("PUT", "p:1", "name", "Jane Doe", "PURPOSE", "support") == 1)

# One pipeline, each command with its own purpose: what a pooled client does.
pipe = support.pipeline(transaction=False)
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "support")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "marketing")
pipe.execute_command("GET", "p:1", "name")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "other", "INC-9")
pipe.execute_command("EXPORT", "p:1", "PURPOSE", "subject-request")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "gossip")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "other")
replies = pipe.execute(raise_on_error=False)
check("pipeline: plain for support", replies[0] == [b"Jane Doe"], repr(replies[0]))
check("pipeline: masked for marketing", replies[1] == [b"J. D."], repr(replies[1]))
check("pipeline: masked without a purpose", replies[2] == [b"J. D."], repr(replies[2]))
check("pipeline: masked for other with a ticket", replies[3] == [b"J. D."], repr(replies[3]))
check("pipeline: EXPORT for a subject request is plain", replies[4] == [b"name", b"Jane Doe"], repr(replies[4]))
check(
    "pipeline: an unknown purpose is refused by name",
    isinstance(replies[5], redis.exceptions.ResponseError) and "unknown purpose 'gossip'" in str(replies[5]),
    repr(replies[5]),
)
check(
    "pipeline: other without a ticket is refused",
    isinstance(replies[6], redis.exceptions.ResponseError) and "PURPOSE other needs a ticket" in str(replies[6]),
    repr(replies[6]),
)

# The connection's purpose applies to commands that state none; a command's own purpose wins.
check("CLIENT.PURPOSE", support.execute_command("CLIENT.PURPOSE", "support") in (b"OK", True, "OK"))
pipe = support.pipeline(transaction=False)
pipe.execute_command("GET", "p:1", "name")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "billing")
replies = pipe.execute()
check("connection purpose applies", replies[0] == [b"Jane Doe"], repr(replies[0]))
check("the command's purpose wins", replies[1] == [b"J. D."], repr(replies[1]))
support.execute_command("CLIENT.PURPOSE")
check("CLIENT.PURPOSE with no name clears it", support.execute_command("GET", "p:1", "name") == [b"J. D."])

# A role that must state a purpose.
pipe = analyst.pipeline(transaction=False)
pipe.execute_command("GET", "p:1", "name")
pipe.execute_command("GET", "p:1", "name", "PURPOSE", "fraud")
replies = pipe.execute(raise_on_error=False)
check(
    "NOPURPOSE without a purpose",
    isinstance(replies[0], redis.exceptions.ResponseError) and "NOPURPOSE" in str(replies[0])
    and "only for a stated purpose" in str(replies[0]),
    repr(replies[0]),
)
check("analyst with a purpose reads masked", replies[1] == [b"J. D."], repr(replies[1]))

# Every entry carries its command's purpose (and ticket).
entries = [json.loads(line) for line in admin.execute_command("AUDIT.TAIL", "40")]
mine = [(e["command"], e["purpose"], e["ticket"], e["outcome"]) for e in entries if e["client"] in ("py-support", "py-analyst") and e["command"] != "AUTH"]
expected = [
    ("PUT", "support", None, "ok"),
    ("GET", "support", None, "ok"),
    ("GET", "marketing", None, "ok"),
    ("GET", None, None, "ok"),
    ("GET", "other", "INC-9", "ok"),
    ("EXPORT", "subject-request", None, "ok"),
    ("GET", "support", None, "ok"),
    ("GET", "billing", None, "ok"),
    ("GET", None, None, "ok"),
    ("GET", None, None, "denied"),
    ("GET", "fraud", None, "ok"),
]
check("audit entries carry each command's purpose", mine[-len(expected):] == expected, repr(mine))
check("AUDIT.VERIFY", admin.execute_command("AUDIT.VERIFY").startswith(b"OK"))
finish("redis-py purposes")
