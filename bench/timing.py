#!/usr/bin/env python3
"""Login timing: does the response time tell an unknown username, a wrong password, a locked
user or a deactivated user apart (R-L4)? Each costs one password hash of the configured cost;
this measures it end to end over HTTP.

Starts `keyward serve` (a release build) on a fresh data directory with the default Argon2id
parameters, makes the users through the CLI, then sends SOAP logins with wrong credentials in
random order — SAMPLES of each kind, one at a time over one keep-alive connection — and reports,
for each kind against "wrong password": the medians, their difference, and Welch's t statistic.
|t| below about 2 means the difference is not distinguishable from noise at that sample size.

    cargo build --release
    python3 bench/timing.py [--samples 500] [--bin target/release/keyward] [--out FILE.json]
                            [--database-url postgres://postgres@127.0.0.1:5432/postgres]

With --integration, the kinds are integration-token logins instead (issue 17): a well-formed
token that is nobody's, the same for an unknown username, another user's token, a revoked one
and an expired one, each against the first; and the right token, for scale.

On SQLite by default; with --database-url, on a fresh PostgreSQL database created on that
server (with psql) and dropped afterwards. Standard library only. Prints a table and writes the
raw figures as JSON.
"""

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = "Passw0rd!timing"
KINDS = ["wrong password", "unknown user", "locked user", "deactivated user"]
# Refusals against the first; the right token, answered at once, for scale.
INTEGRATION_KINDS = ["nobody's token", "unknown user's token", "another user's token",
                     "revoked token", "expired token", "right token"]
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def integration_token_shape():
    """A well-formed integration token nobody holds: kwi_, 30 random base62, then the CRC-32
    of the first 34 characters in base62 (6 characters, as keyward writes its check)."""
    import zlib
    body = "kwi_" + "".join(random.choice(BASE62) for _ in range(30))
    n, check = zlib.crc32(body.encode()), ""
    for _ in range(6):
        n, r = divmod(n, 62)
        check = BASE62[r] + check
    return body + check


def mailed_integration_token(data_dir):
    """The value on the newest integration-token mail the file transport wrote."""
    mail = os.path.join(data_dir, "mail")
    for name in sorted(os.listdir(mail), reverse=True):
        for line in open(os.path.join(mail, name)).read().splitlines():
            if line.startswith("Integration token (case-sensitive): "):
                return line.split(": ", 1)[1].strip()
    sys.exit("no integration-token mail")


def envelope(username, password):
    return (
        '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Body>'
        '<login xmlns="urn:partner.soap.sforce.com"><username>%s</username>'
        "<password>%s</password></login></se:Body></se:Envelope>" % (username, password)
    )


class Keyward:
    def __init__(self, binary, data_dir, database_url=""):
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
        if database_url:
            self.env["KEYWARD_DATABASE_URL"] = database_url
        self.env.update({
            "KEYWARD_DATA_DIR": data_dir,
            "KEYWARD_LOG_LEVEL": "warn",
            # Thousands of refusals from one address: the per-address limit would end the run.
            "KEYWARD_ADDRESS_LIMIT_EXEMPT": "127.0.0.1",
        })

    def cli(self, *args, stdin=None):
        out = subprocess.run(
            [self.binary, *args], input=stdin, capture_output=True, text=True, env=self.env
        )
        if out.returncode != 0:
            sys.exit("keyward %s failed: %s" % (" ".join(args), out.stderr.strip()))
        return out.stdout.strip()

    def serve(self, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "127.0.0.1:0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            text = open(log_path).read()
            m = re.search(r"keyward listening on http://127\.0\.0\.1:(\d+)", text)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                sys.exit("serve exited: " + text)
            time.sleep(0.1)
        sys.exit("serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def welch_t(a, b):
    va, vb = statistics.variance(a), statistics.variance(b)
    return (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va / len(a) + vb / len(b))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--bin", default="target/release/keyward")
    p.add_argument("--out", default="")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--database-url", default="",
                   help="a PostgreSQL server to run on (a fresh database is made there)")
    p.add_argument("--integration", action="store_true",
                   help="integration-token logins: a wrong token against the right one")
    args = p.parse_args()
    kinds = INTEGRATION_KINDS if args.integration else KINDS
    if not os.path.exists(args.bin):
        sys.exit("%s is missing: run cargo build --release first" % args.bin)

    data = tempfile.mkdtemp(prefix="keyward-timing-")
    database_url, drop = "", None
    if args.database_url:
        name = "keyward_timing_%d" % random.randrange(10**9)
        subprocess.run(["psql", args.database_url, "-qc", "CREATE DATABASE %s" % name], check=True)
        database_url = args.database_url.rsplit("/", 1)[0] + "/" + name
        drop = ["psql", args.database_url, "-qc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name]
    kw = Keyward(os.path.abspath(args.bin), data, database_url)
    try:
        kw.cli("init", "--org-name", "Timing")
        # Wrong passwords must never lock anyone: the org has no lockout.
        kw.cli("policy", "set", "Timing", "--lockout-attempts", "0")
        kw.cli("org", "create", "--name", "Locked")
        kw.cli("policy", "set", "Locked", "--lockout-attempts", "1", "--lockout-minutes", "0")

        def user(org, name):
            kw.cli(
                "user", "create", "--org", org, "--username", name, "--email", name,
                "--password-stdin", stdin=PASSWORD + "\n",
            )
            return name

        wrong = user("Timing", "known@timing.test")
        locked = user("Locked", "locked@timing.test")
        inactive = user("Timing", "inactive@timing.test")
        kw.cli("user", "deactivate", inactive)
        tokens = {}
        if args.integration:
            # The CLI delivers the mail itself when no server runs.
            for name in ("right", "revoked", "expired"):
                tid = kw.cli("integration", "create", wrong, "--name", name)
                tokens[name] = (tid, mailed_integration_token(data))
            other = user("Timing", "other@timing.test")
            kw.cli("integration", "create", other, "--name", "other")
            tokens["other"] = (None, mailed_integration_token(data))
            kw.cli("integration", "revoke", tokens["revoked"][0])
        port = kw.serve(os.path.join(data, "serve.log"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def login(username, password):
            body = envelope(username, password)
            start = time.perf_counter()
            conn.request(
                "POST", "/services/Soap/u/59.0", body,
                {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
            )
            r = conn.getresponse()
            text = r.read().decode()
            elapsed = time.perf_counter() - start
            return elapsed, r.status, text

        # One wrong password locks the Locked org's user until an admin unlocks.
        login(locked, "Wrong-password-1")
        attempts = {
            "wrong password": lambda i: (wrong, "Wrong-password-%d" % i),
            "unknown user": lambda i: ("nobody-%d@timing.test" % i, PASSWORD),
            "locked user": lambda i: (locked, PASSWORD),
            "deactivated user": lambda i: (inactive, PASSWORD),
            "right token": lambda i: (wrong, tokens["right"][1]),
            "nobody's token": lambda i: (wrong, integration_token_shape()),
            "unknown user's token": lambda i: ("nobody-%d@timing.test" % i, integration_token_shape()),
            "another user's token": lambda i: (wrong, tokens["other"][1]),
            "revoked token": lambda i: (wrong, tokens["revoked"][1]),
            "expired token": lambda i: (wrong, tokens["expired"][1]),
        }
        if args.integration:
            # A token one day from expiry expires during no run; this one is past it, as a
            # clock moved forward would leave it, written where the server reads it.
            expire = "UPDATE integration_tokens SET expires_at = 0 WHERE name = 'expired'"
            if database_url:
                subprocess.run(["psql", database_url, "-qc", expire], check=True)
            else:
                import sqlite3
                with sqlite3.connect(os.path.join(data, "keyward.db")) as db:
                    db.execute(expire)
        for i in range(args.warmup):
            for kind in kinds:
                login(*attempts[kind](i))
        order = [k for k in kinds for _ in range(args.samples)]
        random.shuffle(order)
        times = {k: [] for k in kinds}
        answers = {k: set() for k in kinds}
        for i, kind in enumerate(order):
            elapsed, status, text = login(*attempts[kind](i))
            times[kind].append(elapsed * 1000)
            code = re.search(r"<faultcode>([^<]*)</faultcode>", text)
            answers[kind].add((status, code.group(1) if code else text[:60]))
        kw.stop()
        history = json.loads(kw.cli("login-history", "--limit", "10000", "--format", "json"))
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if drop:
            subprocess.run(drop, check=False)

    base_kind = kinds[0]
    base = times[base_kind]
    rows = []
    for kind in kinds:
        t = times[kind]
        rows.append({
            "kind": kind,
            "samples": len(t),
            "median_ms": statistics.median(t),
            "p90_ms": statistics.quantiles(t, n=10)[8],
            "mean_ms": statistics.mean(t),
            "stdev_ms": statistics.stdev(t),
            "median_minus_base_ms": statistics.median(t) - statistics.median(base),
            "welch_t_vs_base": 0.0 if kind == base_kind else welch_t(t, base),
            "answers": sorted("%s %s" % a for a in answers[kind]),
        })
    statuses = {}
    for h in history:
        statuses[h["status"]] = statuses.get(h["status"], 0) + 1
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "parameters": {
            "samples": args.samples,
            "argon2id": "defaults (m=19456 KiB, t=2, p=1)",
            "backend": "postgresql" if args.database_url else "sqlite",
            "base": base_kind,
        },
        "results": rows,
        "login_history_statuses": statuses,
    }
    print("%-18s %7s %10s %10s %10s %12s %8s" % (
        "kind", "n", "median ms", "p90 ms", "stdev ms", "Δmedian ms", "t"))
    for r in rows:
        print("%-18s %7d %10.2f %10.2f %10.2f %12.2f %8.2f" % (
            r["kind"], r["samples"], r["median_ms"], r["p90_ms"], r["stdev_ms"],
            r["median_minus_base_ms"], r["welch_t_vs_base"]))
    for r in rows:
        print("  %s answered: %s" % (r["kind"], ", ".join(r["answers"])))
    print("login history: %s" % json.dumps(statuses, sort_keys=True))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print("written to %s" % args.out)


if __name__ == "__main__":
    main()
