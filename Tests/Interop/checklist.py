"""The pass/fail bookkeeping the interop scripts share: one line per check, then a summary."""
import sys

passed = failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def finish(label):
    """Prints 'LABEL: N passed, N failed' and exits non-zero if anything failed."""
    print(f"{label}: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
