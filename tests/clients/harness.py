"""Plumbing shared by the Python client tests (ssf_test.py, beatbox_test.py): the keyward admin
CLI, the token mails (security and integration tokens), login history, and the TAP-like scenario
runner.

Environment (set by the Rust test that starts the server):
  KEYWARD_TEST_URL  base URL of the running server, e.g. http://127.0.0.1:41234
  KEYWARD_TEST_BIN  the keyward binary, run as the admin CLI on the server's database
  KEYWARD_DATA_DIR  the server's data dir; its file mail transport writes one mail/*.eml per mail,
                    and on SQLite its database is keyward.db there
  (plus whatever the server itself was given: KEYWARD_DATABASE_URL, KEYWARD_PASSWORD_HASH_*, ...)
"""

import json
import os
import re
import secrets
import signal
import sqlite3
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
DATA_DIR = Path(_required_env("KEYWARD_DATA_DIR"))
MAIL_DIR = DATA_DIR / "mail"

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
_INTEGRATION_LINE = re.compile(r"^Integration token \(case-sensitive\): (kwi_[A-Za-z0-9]{36})\r?$", re.M)


def _newest_mailed(address, line, what, not_this):
    """The value on LINE in the newest mail to ADDRESS that has one; waits (up to 15 s) until one
    other than NOT_THIS has arrived. Mail files sort oldest first."""
    deadline = time.monotonic() + 15
    while True:
        newest = None
        files = sorted(MAIL_DIR.glob("*.eml")) if MAIL_DIR.is_dir() else []
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            headers = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0].splitlines()
            found = line.search(text)
            if f"To: {address}" in headers and found:
                newest = found.group(1)
        if newest and newest != not_this:
            return newest
        if time.monotonic() > deadline:
            raise Failed(f"no {'new ' if not_this else ''}{what} mail to {address} in {MAIL_DIR} after 15 s")
        time.sleep(0.1)


def token_mailed_to(address, not_this=None):
    """The newest security token mailed to ADDRESS (other than NOT_THIS)."""
    return _newest_mailed(address, _TOKEN_LINE, "token", not_this)


def integration_token_mailed_to(address, not_this=None):
    """The newest integration token mailed to ADDRESS (other than NOT_THIS): the mail is the only
    place its value appears."""
    return _newest_mailed(address, _INTEGRATION_LINE, "integration token", not_this)


def new_integration_token(user, name):
    """Creates integration token NAME for USER (who has none yet); returns (its id, the token)."""
    token_id = keyward("integration", "create", user, "--name", name)
    return token_id, integration_token_mailed_to(user)


def integration_usage(token_id):
    """The usage inventory of an integration token: one row per (client, source address)."""
    return json.loads(keyward("integration", "usage", token_id, "--format", "json"))


def expire_integration_token(token_id):
    """Makes the token expired. A running server reads the real clock and no interface shortens a
    token's life, so this moves its expires_at (epoch milliseconds) a minute into the past in the
    server's database: what the server would see once the token's last day had passed."""
    check(re.fullmatch(r"[A-Za-z0-9]{18}", token_id), f"not a token id: {token_id!r}")
    id15 = token_id[:15]  # stored ids are the 15-character form
    past = int(time.time() * 1000) - 60_000
    url = os.environ.get("KEYWARD_DATABASE_URL")
    if url:
        sql = f"UPDATE integration_tokens SET expires_at = {past} WHERE id = '{id15}' RETURNING id"
        done = subprocess.run(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True, timeout=60
        )
        check(done.returncode == 0, f"psql failed: {done.stderr.strip()}")
        changed = len(done.stdout.split())
    else:
        # The server writes in WAL mode with a busy timeout; this one waits for its turn too.
        with sqlite3.connect(DATA_DIR / "keyward.db", timeout=10) as db:
            changed = db.execute(
                "UPDATE integration_tokens SET expires_at = ? WHERE id = ?", (past, id15)
            ).rowcount
        db.close()
    check(changed == 1, f"expected to expire 1 integration token, changed {changed}")


def eventually(condition, message):
    """Waits (up to 3 s) until CONDITION() holds. A running server may answer a session check
    from a memory up to session_cache.ttl_ms old (at most 1 s), so a change the CLI makes reaches
    the sessions it serves within a second."""
    deadline = time.monotonic() + 3
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(message)
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


def expect_history(user, status, attempt, credential=None):
    """Runs ATTEMPT() and checks that it wrote exactly one login-history row for USER, with STATUS
    (and, if given, the CREDENTIAL it names). Returns what ATTEMPT returned."""
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
    if credential is not None:
        check(
            rows[0]["credential"] == credential,
            f"login history's credential is {rows[0]['credential']!r}, expected {credential!r}",
        )
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
