"""Plumbing shared by the Python client tests (ssf_test.py, beatbox_test.py): the keyward admin
CLI, the token mails, login history, and the TAP-like scenario runner.

Environment (set by the Rust test that starts the server):
  KEYWARD_TEST_URL  base URL of the running server, e.g. http://127.0.0.1:41234
  KEYWARD_TEST_BIN  the keyward binary, run as the admin CLI on the server's database
  KEYWARD_DATA_DIR  the server's data dir; its file mail transport writes one mail/*.eml per mail
  (plus whatever the server itself was given: KEYWARD_DATABASE_URL, KEYWARD_PASSWORD_HASH_*, ...)
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        print(f"not ok - environment: {name} is not set", flush=True)
        sys.exit(2)
    return value


URL = _required_env("KEYWARD_TEST_URL").rstrip("/")
BIN = _required_env("KEYWARD_TEST_BIN")
MAIL_DIR = Path(_required_env("KEYWARD_DATA_DIR")) / "mail"

# The CLI gets this program's environment (KEYWARD_DATA_DIR, KEYWARD_DATABASE_URL, ...: the
# server's database); keyward ignores the KEYWARD_TEST_* variables.
CLI_ENV = dict(os.environ)

MUST_USE_TOKEN = "LOGIN_MUST_USE_SECURITY_TOKEN"
INVALID_LOGIN = "INVALID_LOGIN"


class Failed(Exception):
    """A scenario's expectation did not hold."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def rand():
    return secrets.token_hex(4)


def keyward(*args, stdin=""):
    """Runs `keyward ARGS...` on the server's database and returns its stripped stdout."""
    done = subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True, env=CLI_ENV, timeout=60)
    if done.returncode != 0:
        raise Failed(f"keyward {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


_TOKEN_LINE = re.compile(r"^Security token \(case-sensitive\): ([A-Za-z0-9]{24})\r?$", re.M)


def token_mailed_to(address, not_this=None):
    """The newest security token mailed to ADDRESS; waits (up to 15 s) until one other than
    NOT_THIS has arrived. Mail files sort oldest first."""
    deadline = time.monotonic() + 15
    while True:
        newest = None
        files = sorted(MAIL_DIR.glob("*.eml")) if MAIL_DIR.is_dir() else []
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            headers = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0].splitlines()
            token = _TOKEN_LINE.search(text)
            if f"To: {address}" in headers and token:
                newest = token.group(1)
        if newest and newest != not_this:
            return newest
        if time.monotonic() > deadline:
            raise Failed(f"no {'new ' if not_this else ''}token mail to {address} in {MAIL_DIR} after 15 s")
        time.sleep(0.1)


def new_user(org, profile=None):
    """A user of ORG with a password; returns (username, password, token, user id)."""
    username = f"ada-{rand()}@example.test"
    password = f"Passw0rd-{rand()}"
    args = ["user", "create", "--org", org, "--username", username, "--email", username, "--password-stdin"]
    if profile:
        args += ["--profile", profile]
    user_id = keyward(*args, stdin=password + "\n")
    return username, password, token_mailed_to(username), user_id


def history(user):
    """USER's login-history rows, newest first."""
    return json.loads(keyward("login-history", "--user", user, "--limit", "10000", "--format", "json"))


def expect_history(user, status, attempt):
    """Runs ATTEMPT() and checks that it wrote exactly one login-history row for USER, with STATUS.
    Returns what ATTEMPT returned."""
    before = len(history(user))
    result = attempt()
    rows = history(user)
    for _ in range(30):  # in case the row is written after the answer
        if len(rows) != before:
            break
        time.sleep(0.1)
        rows = history(user)
    check(len(rows) == before + 1, f"expected 1 new login-history row for {user}, got {len(rows) - before}")
    check(rows[0]["status"] == status, f"login history says {rows[0]['status']!r}, expected {status!r}")
    return result


def run(program, modes, scenarios, timeout=300):
    """Runs every scenario of SCENARIOS(mode) -- a list of (name, function) -- for each mode,
    printing `ok - MODE: NAME` or `not ok - MODE: NAME: DETAILS`, then exits 0 only if all passed.
    SCENARIOS(mode) may raise (setup failure): that counts as one failure for the mode."""

    def on_alarm(*_):
        print(f"not ok - the whole run: still running after {timeout} s", flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    passed = failed = 0
    for mode in modes:
        try:
            todo = scenarios(mode)
        except Exception as e:  # noqa: BLE001 -- report and go on with the next mode
            print(f"not ok - {mode}: setup: {_one_line(e)}", flush=True)
            failed += 1
            continue
        for name, scenario in todo:
            try:
                scenario()
                print(f"ok - {mode}: {name}", flush=True)
                passed += 1
            except Exception as e:  # noqa: BLE001 -- any error fails this scenario only
                detail = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
                print(f"not ok - {mode}: {name}: {_one_line(detail)}", flush=True)
                failed += 1
    print(f"1..{passed + failed}")
    print(f"# {program}: {passed} passed, {failed} failed", flush=True)
    sys.exit(0 if failed == 0 else 1)


def _one_line(value):
    return " ".join(str(value).split())
