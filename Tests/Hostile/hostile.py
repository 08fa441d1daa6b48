#!/usr/bin/env python3
"""Hostile input against a running Coffer: every case must get an error reply or a close, the
server must keep serving a bystander connection, and its memory must stay bounded.

Usage: hostile.py SOCKET TCP_PORT ADMIN_SECRET SUPPORT_SECRET VICTIM_SECRET SERVER_PID
Prints one line per case and a closing 'N passed, N failed' line.
"""
import os, socket, sys, threading, time

SOCK, PORT, ADMIN, SUPPORT, VICTIM, PID = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
passed = failed = 0
TIMEOUT = 15


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(tcp=False):
    if tcp:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(SOCK)
    return s


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(s):
    """Reads until one full line arrives, or the connection closes. Returns bytes (b'' on close)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    return data


def authed(secret=SUPPORT, client="hostile-support"):
    s = connect()
    s.sendall(resp("AUTH", client, secret))
    assert read_reply(s).startswith(b"+OK"), "AUTH failed"
    return s


bystander = authed()


def bystander_ok():
    bystander.sendall(b"PING\r\n")
    return read_reply(bystander) == b"+PONG\r\n"


def case(name, payload=None, expect=(b"-",), authenticated=False, tcp=False, fn=None):
    """Sends payload; passes if the reply starts with one of `expect` (b'' means a close is fine),
    the bystander still gets PONG, and RSS stays under 200 MiB."""
    global passed, failed
    ok, detail = False, ""
    try:
        if fn:
            ok, detail = fn()
        else:
            s = authed() if authenticated else connect(tcp)
            try:
                if isinstance(payload, (list, tuple)):
                    for part in payload:
                        s.sendall(part)
                else:
                    s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = read_reply(s)
            ok = any(reply.startswith(e) for e in expect) or (b"" in expect and reply == b"")
            detail = repr(reply[:100])
            s.close()
    except Exception as error:
        ok, detail = False, f"exception {error!r}"
    alive = bystander_ok()
    memory = rss_kib()
    good = ok and alive and memory < 200 * 1024
    if good:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if good else 'FAIL'} {name}: {detail} (bystander {'ok' if alive else 'DEAD'}, rss {memory // 1024} MiB)")


E, ERR, CLOSE = b"-", b"-ERR", b""

# Malformed RESP framing (Redis's own protocol-test cases and more).
for n, p in enumerate([b"*3000000000\r\n", b"*-10\r\n*3000000000\r\n", b"*20000000000000000000000\r\n", b"*abc\r\n",
                       b"*1\r\nfoo\r\n", b"*1\r\n$-10\r\n", b"*1\r\n$2000000000\r\n", b"*1\r\n$blabla\r\n", b"*1\r\n$3\r\nfoobar\r\n",
                       b"*2\r\n:1\r\n:2\r\n", b"*1\r\n*1\r\n$1\r\nx\r\n", b"*1\r\n+OK\r\n", b"*1\r\n$\r\n", b"*\r\n", b"*1\r\n$-1\r\n",
                       b"*1\r\n$1\r\nx\n\n"]):
    case(f"malformed RESP #{n}: {p[:24]!r}", p, (ERR,), authenticated=n % 2 == 0)
# Inline lines.
case("unbalanced double quote", b'GET "abc\r\n', (ERR,))
case("unbalanced single quote", b"GET 'abc\r\n", (ERR,))
case("quote followed by text", b'GET "a"b\r\n', (ERR,))
case("NUL bytes in an inline command", b"GE\x00T x\x00 y\r\n", (E,))
case("invalid UTF-8 inline command", b"\xff\xfe\xfd x\r\n", (E,))
case("invalid UTF-8 subject", resp("GET", b"\xff\xfe", "name"), (b"-INVALID",), authenticated=True)
case("invalid UTF-8 field name", resp("GET", "s", b"na\xffme"), (b"-INVALID",), authenticated=True)
case("control bytes as a subject", resp("PUT", b"\x01\x02", "name", "x"), (b"-INVALID",), authenticated=True)
case("100 MB line with no newline", [b"A" * (1 << 20)] * 100, (ERR, CLOSE))
case("100 MB line, authenticated", [b"B" * (1 << 20)] * 100, (ERR, CLOSE), authenticated=True)
case("1,000,000 arguments declared", b"*1000000\r\n", (ERR,), authenticated=True)
case("1,000,000 arguments declared, anonymous", b"*1000000\r\n", (ERR,))
# Found by the fuzzer: a 19-digit count past Int.max used to trap and stop the whole server.
case("argument count past Int.max, anonymous", b"*9999499999999999999\r\n", (ERR,))
case("bulk length past Int.max", b"*1\r\n$9999999999999999999\r\n", (ERR,), authenticated=True)
case("1025 arguments", resp(*(["GET", "s"] + ["name"] * 1023)), (ERR,), authenticated=True)
case("1024 arguments (at the limit)", resp(*(["PUT", "s"] + ["name", "x"] * 511)), (b":1",), authenticated=True)
# GET naming one field 1,022 times returned 6,500x the request's size: duplicates are refused.
case("GET naming one field 1,022 times", resp(*(["GET", "s"] + ["name"] * 1022)), (b"-INVALID GET names field 'name' more than once",), authenticated=True)
case("DEL naming one field twice", resp("DEL", "s", "name", "name"), (b"-INVALID DEL names field",), authenticated=True)
case("bulk string of 1 MiB + 1", resp("PUT", "s", "name", b"x" * (1024 * 1024 + 1)), (ERR,), authenticated=True)
case("AUTH with a 1 MB secret", resp("AUTH", "admin", b"x" * (1024 * 1024)), (ERR,))
case("AUTH with a huge client name", resp("AUTH", b"n" * 3000, "x"), (ERR,))
case("AUTH with a long unknown client name", resp("AUTH", b"n" * 900, "x"), (b"-WRONGPASS",))
case("deep nesting", b"*1\r\n" * 1000, (ERR,), authenticated=True)
case("wrong type byte", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n", (E,), authenticated=True)
case("unknown command before AUTH", b"FLUSHALL\r\n", (b"-NOAUTH",))
case("unknown command after AUTH", b"FLUSHALL\r\n", (b"-ERR unknown command",), authenticated=True)
case("HELLO 99", resp("HELLO", "99"), (b"-NOPROTO",))
# As in Redis, a command allowed before AUTH gets its own syntax error (not NOAUTH).
case("HELLO with a bad option, anonymous", resp("HELLO", "3", "BOGUS"), (b"-ERR Syntax error in HELLO option",))
case("HELLO with a bad option, authenticated", resp("HELLO", "3", "BOGUS"), (ERR,), authenticated=True)
case("data command before AUTH", resp("GET", "s", "name"), (b"-NOAUTH",))
# Limits on ids and values.
case("subject id of 128 characters (at the limit)", resp("PUT", "s" * 128, "name", "x"), (b":1",), authenticated=True)
case("subject id of 129 characters", resp("PUT", "s" * 129, "name", "x"), (b"-INVALID",), authenticated=True)
case("empty subject id", resp("PUT", "", "name", "x"), (b"-INVALID",), authenticated=True)
case("email as a subject id", resp("PUT", "jane@example.com", "name", "x"), (b"-INVALID",), authenticated=True)
case("value of 64 KiB (at the limit)", resp("PUT", "v", "name", b"x" * 65536), (b":1",), authenticated=True)
case("value of 64 KiB + 1", resp("PUT", "v", "name", b"x" * 65537), (b"-INVALID name",), authenticated=True)
case("empty value", resp("PUT", "v", "name", ""), (b"-INVALID",), authenticated=True)
case("CVV field", resp("PUT", "v", "card.cvv", "123"), (b"-INVALID",), authenticated=True)
case("unknown field", resp("GET", "v", "shoe_size"), (b"-INVALID",), authenticated=True)
case("PUT with a dangling field", resp("PUT", "v", "name"), (ERR,), authenticated=True)
case("KEYS.RETIRE with a non-number", resp("KEYS.RETIRE", "x"), (ERR,), authenticated=True)
case("AUDIT.TAIL with a huge count", resp("AUDIT.TAIL", "99999999999999999999"), (E,), authenticated=True)
case("plain text on the TCP port", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", (E,), tcp=True)
def tls_hello():
    s = connect(tcp=True)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(500))
    s.shutdown(socket.SHUT_WR)
    reply = read_reply(s)
    return reply == b"" or reply.startswith(b"-"), repr(reply[:60])


case("TLS ClientHello on the plaintext TCP port", fn=tls_hello)


def slow_client():
    s = connect()
    for byte in b"PING\r\n":
        s.sendall(bytes([byte]))
        time.sleep(0.3)
    return read_reply(s) == b"+PONG\r\n", "one byte every 0.3 s"


case("slow client, one byte at a time", fn=slow_client)


def many_connections():
    opened = []
    try:
        for _ in range(2000):
            try:
                opened.append(connect())
            except OSError:
                break
        answered = 0
        for s in opened[:50]:
            s.sendall(b"PING\r\n")
            if read_reply(s).startswith((b"+PONG", b"-ERR max")):
                answered += 1
        return answered == min(50, len(opened)), f"{len(opened)} connections opened, first 50 answered {answered}"
    finally:
        for s in opened:
            s.close()


case("2,000 connections opened at once", fn=many_connections)


def flood():
    s = authed()
    payload = b"PING\r\n" * 100_000
    sender = threading.Thread(target=lambda: s.sendall(payload))
    sender.start()
    got = 0
    data = b""
    s.settimeout(30)
    while got < 100_000:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
        got = data.count(b"+PONG\r\n")
    sender.join()
    return got == 100_000, f"{got} of 100000 replies"


case("pipelined flood of 100,000 commands", fn=flood)


def half_then_close():
    s = authed()
    s.sendall(b"*3\r\n$3\r\nPUT\r\n$1\r\nh\r\n")
    s.close()
    return True, "closed mid-request"


case("close in the middle of a request", fn=half_then_close)


def unread_flood(authenticate, mib, limit_mib, request=b"PING\r\n"):
    """Security round 2, item 1: a connection that pipelines MiBs of PINGs and never reads its
    replies is bounded (closed once its unread replies pass the output limit), and the server's
    memory goes back when such connections close. With COMMAND DOCS (27 bytes asking for
    8.6 KB) the replies of one read alone reached hundreds of MiB before the output limit was
    checked (2026-12-07: 55 -> 221 MiB for one connection's 1 MiB of requests)."""
    def run():
        before = rss_kib()
        peak = before
        closed = 0
        for _ in range(3):
            s = connect()
            s.settimeout(5)
            if authenticate:
                s.sendall(resp("AUTH", "hostile-support", SUPPORT))
            else:
                # A wrong secret: the flood then runs anonymous, as the attack did.
                s.sendall(resp("AUTH", "hostile-support", "x"))
            chunk = request * ((1 << 19) // len(request))
            sent = 0
            try:
                while sent < mib << 20:
                    s.sendall(chunk)
                    sent += len(chunk)
            except (socket.timeout, OSError):
                pass
            peak = max(peak, rss_kib())
            # The server closed it (EOF or reset while we keep sending), or stopped reading.
            try:
                s.settimeout(10)
                while s.recv(1 << 20):
                    pass
                closed += 1
            except (socket.timeout, OSError):
                closed += 1
            s.close()
        time.sleep(1.0)
        after = rss_kib()
        growth, kept = (peak - before) // 1024, (after - before) // 1024
        ok = closed == 3 and growth <= 3 * limit_mib + 24 and kept <= 20
        return ok, f"rss {before // 1024} -> peak {peak // 1024} -> after {after // 1024} MiB (growth {growth}, kept {kept})"
    return run


case("unread PING flood after a failed AUTH (3 x 64 MiB)", fn=unread_flood(False, 64, 0))
case("unread PING flood, authenticated (3 x 32 MiB, output limit 8 MiB)", fn=unread_flood(True, 32, 8))
case("unread COMMAND DOCS flood, authenticated (3 x 1 MiB, output limit 8 MiB)",
     fn=unread_flood(True, 1, 8, request=resp("COMMAND", "DOCS")))


def redis_py_retry_then_right_secret():
    """Item 3: redis-py retries a failed AUTH (10 times by default); one call with a stale
    secret must not lock the service out: the right secret works at once afterwards."""
    import redis
    stale = redis.Redis(host="127.0.0.1", port=PORT, username="hostile-victim", password="stale", protocol=2)
    try:
        stale.ping()
        return False, "the stale secret was accepted"
    except redis.exceptions.AuthenticationError:
        pass
    except redis.exceptions.ConnectionError:
        pass
    right = redis.Redis(host="127.0.0.1", port=PORT, username="hostile-victim", password=VICTIM, protocol=2)
    ok = right.execute_command("WHOAMI") == [b"hostile-victim", b"billing"]
    return ok, "right secret accepted after a redis-py call with a stale one"


case("redis-py with a stale secret does not lock the client out", fn=redis_py_retry_then_right_secret)


def lockout_is_per_origin():
    """Item 3: a lock-out earned from 127.0.0.2 does not lock the same name out on 127.0.0.1."""
    attacker = socket.create_connection(("127.0.0.1", PORT), timeout=30, source_address=("127.0.0.2", 0))
    for guess in range(10):
        attacker.sendall(resp("AUTH", "hostile-victim", f"guess-{guess}"))
        read_reply(attacker)
    attacker.sendall(resp("AUTH", "hostile-victim", VICTIM))
    locked_there = read_reply(attacker).startswith(b"-WRONGPASS")
    attacker.close()
    s = connect(tcp=True)
    s.sendall(resp("AUTH", "hostile-victim", VICTIM))
    fine_here = read_reply(s).startswith(b"+OK")
    s.close()
    return locked_there and fine_here, f"locked on 127.0.0.2: {locked_there}, serves on 127.0.0.1: {fine_here}"


case("a lock-out from 127.0.0.2 leaves 127.0.0.1 alone", fn=lockout_is_per_origin)


def audit_seq():
    s = authed(ADMIN, "admin")
    s.sendall(resp("AUDIT.TAIL", "1"))
    data = b""
    while b"}" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    text = data.decode(errors="replace")
    return int(text.split('"seq":')[1].split(",")[0].split("}")[0])


def failed_auth_audit_is_bounded():
    """Item 4: 2,000 failed AUTHs (one stale secret, from 100 connections) add a bounded number
    of audit rows: the first failure of each (name, origin) per window, the rest counted."""
    before = audit_seq()
    def attacker():
        s = connect()
        s.settimeout(60)
        s.sendall(b"".join(resp("AUTH", "hostile-support", "stale-secret") for _ in range(20)))
        data = b""
        while data.count(b"\r\n") < 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
    threads = [threading.Thread(target=attacker) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    added = audit_seq() - before - 1  # the AUDIT.TAIL of the first audit_seq() call
    return added <= 4, f"2000 failed AUTHs added {added} audit rows (AUTH/denied once per window; the rest counted)"


case("2,000 failed AUTHs write a bounded number of audit rows", fn=failed_auth_audit_is_bounded)


def anonymous_slots_are_capped():
    """Item 4: idle anonymous connections get their own cap (a quarter of --max-clients); at the
    cap the oldest makes room for the newest, so holding the cap does not keep a new client from
    AUTH (found by an outside attack on 2026-12-07: every new connection was refused); they are
    closed at the AUTH deadline even if they PING, and an authenticated client keeps its slot."""
    opened = []
    try:
        for _ in range(400):
            s = connect()
            try:
                s.sendall(b"PING\r\n")
            except OSError:
                pass
            if read_reply(s).startswith(b"+PONG"):
                opened.append(s)
        # The 144 oldest were told why and closed, the 256 newest still answer.
        evicted = alive = 0
        for s in opened:
            try:
                s.sendall(b"PING\r\n")
                reply = read_reply(s)
            except OSError:
                reply = b""
            if reply.startswith(b"+PONG"):
                alive += 1
            elif reply.startswith(b"-ERR max number of unauthenticated clients reached; this connection was the oldest") or reply == b"":
                evicted += 1
        capped = len(opened) == 400 and alive <= 256 and evicted >= 400 - 256
        # With the cap full of silent connections, a new client still gets to AUTH.
        newcomer = authed()
        newcomer.sendall(b"PING\r\n")
        newcomer_served = read_reply(newcomer) == b"+PONG\r\n"
        newcomer.close()
        # Pinging does not extend the deadline (3 s in this suite): all are closed by 6 s.
        deadline = time.time() + 6
        while time.time() < deadline:
            for s in opened:
                try:
                    s.sendall(b"PING\r\n")
                except OSError:
                    pass
            time.sleep(1)
        still = 0
        for s in opened:
            try:
                s.sendall(b"PING\r\n")
                reply = read_reply(s)
                if reply.startswith(b"+PONG"):
                    still += 1
            except OSError:
                pass
        fresh = authed()
        fresh.sendall(b"PING\r\n")
        served = read_reply(fresh) == b"+PONG\r\n"
        fresh.close()
        return capped and newcomer_served and still == 0 and served, f"{len(opened)} admitted, {alive} answering at once, {evicted} evicted, newcomer at a full cap served: {newcomer_served}, {still} still open after the deadline, authenticated client served: {served}"
    finally:
        for s in opened:
            s.close()


case("400 idle anonymous connections cannot take every slot or keep a newcomer from AUTH", fn=anonymous_slots_are_capped)


def brute_force():
    """10,000 wrong secrets for one client name, from 200 connections at once."""
    results = []

    def attacker():
        s = connect()
        s.settimeout(60)
        s.sendall(b"".join(resp("AUTH", "hostile-victim", os.urandom(16).hex()) for _ in range(50)))
        data = b""
        while data.count(b"\r\n") < 50:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        results.append(data.count(b"-WRONGPASS"))
        s.close()

    threads = [threading.Thread(target=attacker) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = sum(results)
    # The lock engaged: the right secret is refused now too.
    s = connect()
    s.sendall(resp("AUTH", "hostile-victim", VICTIM))
    locked = read_reply(s).startswith(b"-WRONGPASS")
    return refused == 10_000 and locked, f"{refused} of 10000 wrong secrets refused, right secret refused while locked: {locked}"


case("10,000 AUTH attempts with wrong secrets", fn=brute_force)

print(f"hostile input: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
