"""Drives the real beatbox client (Python 3 port: PyPI `beatbox3`, installed by scripts/test) against
a running keyward server. beatbox speaks only SOAP:

    svc = beatbox.Client()
    svc.serverUrl = KEYWARD_TEST_URL + "/services/Soap/u/36.0"   # http:// gives a plain HTTPConnection
    svc.login(username, password + token)                   # then every call goes to the serverUrl
                                                            # login() returned, on one kept-alive
                                                            # connection
    svc.login(username, integration_token)                  # an integration token is the whole
                                                            # password, no security token
What makes beatbox worth testing: it reads faults namespace-aware but takes the unqualified
faultcode/faultstring (raising SoapFaultError(faultCode, faultString)), asks for gzipped answers
(`Accept-Encoding: gzip`), and keeps one connection alive from login() on.

beatbox3 0.96.1 cannot gzip its requests on Python 3 as shipped: XmlWriter hands gzip.GzipFile a
StringIO, so building any request with the default beatbox.gzipRequest = True raises
`TypeError: string argument expected, got 'bytes'`. This test keeps beatbox's default (gzip on,
`Content-Encoding: gzip`) and repairs that one line — the buffer becomes a BytesIO — so keyward
is tested against the gzip bodies beatbox means to send. (The Beatbox repository's own code, not
on PyPI, also sends absolute-form request lines, `POST http://host/... HTTP/1.1`; beatbox3 sends
the path only. tests/http/soap.rs sends that request line over a raw socket.)

Run by hand (tests/clients/README.md):
    KEYWARD_TEST_URL=... KEYWARD_TEST_BIN=... KEYWARD_DATA_DIR=... python tests/clients/beatbox_test.py
Prints one TAP-like line per scenario and exits 0 only when every scenario passed.
"""

import io

import beatbox

from harness import (
    INVALID_LOGIN,
    MUST_USE_TOKEN,
    URL,
    Failed,
    check,
    eventually,
    expect_history,
    expire_integration_token,
    integration_token_mailed_to,
    integration_usage,
    keyward,
    new_integration_token,
    new_user,
    rand,
    run,
    token_mailed_to,
)

P = beatbox._tPartnerNS  # the partner namespace, to read results: result[P.userId]

# See above: beatbox3's gzip buffer is a StringIO; gzip needs bytes. XmlWriter is the only user of
# the module's StringIO.
beatbox.StringIO = lambda _initial="": io.BytesIO()
check_gzip = beatbox.gzipRequest


def client():
    svc = beatbox.Client()
    svc.serverUrl = f"{URL}/services/Soap/u/36.0"
    return svc


def login(username, secret):
    svc = client()
    svc.login(username, secret)
    return svc


def login_with_integration_token(username, integration_token):
    svc = client()
    svc.login(username, integration_token)  # the token is the whole password: nothing appended
    return svc


def expect_fault(code, call):
    """Expects CALL() to raise beatbox.SoapFaultError with faultCode CODE (the faultcode without
    its `sf:` prefix) and a faultString `CODE: ...`."""
    try:
        call()
    except beatbox.SoapFaultError as e:
        check(e.faultCode == code, f"expected a {code} fault, got {e.faultCode}: {e.faultString}")
        check(e.faultString.startswith(f"{code}: "), f"faultstring {e.faultString!r}")
        return
    raise Failed(f"no fault, but {code} was expected")


def fault_of(call):
    """The faultCode CALL() raises, None if it raises none."""
    try:
        call()
    except beatbox.SoapFaultError as e:
        return e.faultCode
    return None


def expect_refused(username, secret, code):
    expect_fault(code, lambda: login(username, secret))


def scenarios(mode):
    check(beatbox.gzipResponse, "beatbox no longer asks for gzipped answers")
    check(check_gzip, "beatbox no longer gzips its requests by default")
    org = keyward("org", "create", "--name", f"beatbox-{rand()}")

    def success():
        user, password, token, user_id = new_user(org)
        svc = client()
        result = expect_history(user, "Success", lambda: svc.login(user, password + token))
        # login() switched the client to the returned serverUrl: {URL}/services/Soap/u/36.0/{orgId15}
        server_url = str(result[P.serverUrl])
        check(server_url.startswith(f"{URL}/services/Soap/u/36.0/"), f"serverUrl {server_url}")
        check(str(result[P.userId]) == user_id, f"login userId {result[P.userId]}, expected {user_id}")
        info = svc.getUserInfo()  # SOAP getUserInfo with the new session, on the kept-alive connection
        check(str(info[P.userId]) == user_id, f"getUserInfo userId {info[P.userId]}, expected {user_id}")
        check(str(info[P.organizationId]) == org, f"getUserInfo organizationId {info[P.organizationId]}")
        check(str(info[P.userName]) == user, f"getUserInfo userName {info[P.userName]}")

    def password_alone():
        user, password, _token, _ = new_user(org)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: expect_refused(user, password, MUST_USE_TOKEN),
        )

    def trusted_range():
        user, password, _token, _ = new_user(org)
        range_id = keyward("network", "add", org, "127.0.0.1", "127.0.0.1", "--description", "test")
        try:
            expect_history(user, "Success", lambda: login(user, password))
        finally:
            keyward("network", "remove", org, range_id)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: expect_refused(user, password, MUST_USE_TOKEN),
        )

    def token_reset():
        user, password, old_token, _ = new_user(org)
        keyward("token", "reset", user)
        new_token = token_mailed_to(user, not_this=old_token)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: expect_refused(user, password + old_token, MUST_USE_TOKEN),
        )
        expect_history(user, "Success", lambda: login(user, password + new_token))

    def locked_out():
        keyward("policy", "set", org, "--lockout-attempts", "3")
        user, password, token, _ = new_user(org)
        for i in range(3):
            expect_history(
                user, "Invalid password", lambda: expect_refused(user, f"Wrong-{i}-{rand()}", INVALID_LOGIN)
            )
        expect_history(
            user, "Password lockout", lambda: expect_refused(user, password + token, INVALID_LOGIN)
        )

    def deactivated():
        user, password, token, _ = new_user(org)
        keyward("user", "deactivate", user)
        expect_history(
            user, "User is inactive", lambda: expect_refused(user, password + token, INVALID_LOGIN)
        )

    def unknown_user():
        expect_refused(f"nobody-{rand()}@example.test", f"Passw0rd-{rand()}", INVALID_LOGIN)

    def restricted_ip():
        keyward("profile", "create", "--org", org, "--name", "Office Only")
        keyward("profile", "login-ip", "add", org, "Office Only", "10.0.0.0", "10.0.0.255")
        user, password, token, _ = new_user(org, profile="Office Only")
        expect_history(user, "Restricted IP", lambda: expect_refused(user, password + token, INVALID_LOGIN))

    def logout():
        user, password, token, _ = new_user(org)
        svc = login(user, password + token)
        svc.getUserInfo()  # works before
        svc.logout()
        expect_fault("INVALID_SESSION_ID", svc.getUserInfo)

    # Integration tokens (issue 17). The org has no trusted range, so 127.0.0.1 is an untrusted
    # address here (password_alone shows it); a token is refused as a password is: INVALID_LOGIN,
    # with login history saying why.

    def integration_token():
        user, _password, _token, user_id = new_user(org)
        name = f"nightly-sync-{rand()}"
        token_id, integration_token = new_integration_token(user, name)
        svc = expect_history(
            user,
            "Success",
            lambda: login_with_integration_token(user, integration_token),
            credential=f"Integration token: {name}",
        )
        info = svc.getUserInfo()
        check(str(info[P.userId]) == user_id, f"getUserInfo userId {info[P.userId]}, expected {user_id}")
        uses = integration_usage(token_id)
        check(
            [(u["source_ip"], u["uses"]) for u in uses] == [("127.0.0.1", 1)],
            f"keyward integration usage says {uses}",
        )

    def integration_token_revoked():
        user, *_ = new_user(org)
        token_id, integration_token = new_integration_token(user, "to revoke")
        svc = expect_history(user, "Success", lambda: login_with_integration_token(user, integration_token))
        keyward("integration", "revoke", token_id)
        # What its logins created ends with it: the session it opened too.
        eventually(
            lambda: fault_of(svc.getUserInfo) == "INVALID_SESSION_ID",
            "the session the revoked token opened still works",
        )
        expect_history(
            user,
            "Failed: integration token invalid",
            lambda: expect_refused(user, integration_token, INVALID_LOGIN),
            credential="Integration token: to revoke",
        )

    def integration_token_expired():
        user, *_ = new_user(org)
        token_id, integration_token = new_integration_token(user, "to expire")
        expire_integration_token(token_id)
        expect_history(
            user,
            "Failed: integration token expired",
            lambda: expect_refused(user, integration_token, INVALID_LOGIN),
            credential="Integration token: to expire",
        )

    def integration_rotation_in_grace():
        # The org's default grace window (24 h): the predecessor still works right after rotation.
        user, *_ = new_user(org)
        token_id, old = new_integration_token(user, "rotated")
        keyward("integration", "rotate", token_id)
        new = integration_token_mailed_to(user, not_this=old)
        expect_history(
            user,
            "Success",
            lambda: login_with_integration_token(user, old),
            credential="Integration token: rotated (predecessor in grace)",
        )
        expect_history(
            user, "Success", lambda: login_with_integration_token(user, new), credential="Integration token: rotated"
        )

    def integration_rotation_without_grace():
        # Runs after integration_rotation_in_grace: it closes the org's grace window.
        keyward("policy", "set", org, "--integration-grace-hours", "0")
        user, *_ = new_user(org)
        token_id, old = new_integration_token(user, "rotated")
        successor_id = keyward("integration", "rotate", token_id)
        check(successor_id != token_id, "rotate printed the old token's id")
        new = integration_token_mailed_to(user, not_this=old)
        expect_history(
            user,
            "Failed: integration token invalid",
            lambda: expect_refused(user, old, INVALID_LOGIN),
            credential="Integration token: rotated",
        )
        expect_history(
            user, "Success", lambda: login_with_integration_token(user, new), credential="Integration token: rotated"
        )
        check(
            [u["uses"] for u in integration_usage(successor_id)] == [1],
            "the successor's usage inventory does not show its one login",
        )

    return [
        ("password+token from an untrusted IP logs in, and the session works", success),
        ("password alone from an untrusted IP is refused (LOGIN_MUST_USE_SECURITY_TOKEN)", password_alone),
        ("a trusted IP range admits the password alone; removing it requires the token again", trusted_range),
        ("token reset: the old token is refused, the new one works", token_reset),
        ("a locked-out user is refused with INVALID_LOGIN, even with the right password+token", locked_out),
        ("a deactivated user is refused with INVALID_LOGIN", deactivated),
        ("an unknown username is refused with INVALID_LOGIN", unknown_user),
        (
            "a profile with login IP ranges refuses 127.0.0.1 (Restricted IP) with INVALID_LOGIN",
            restricted_ip,
        ),
        ("logout ends the session", logout),
        ("an integration token as the password logs in; login history and usage name it", integration_token),
        ("a revoked integration token is refused with INVALID_LOGIN; its session ends", integration_token_revoked),
        ("an expired integration token is refused with INVALID_LOGIN", integration_token_expired),
        ("after a rotation both tokens work during the default grace window", integration_rotation_in_grace),
        (
            "after a rotation with no grace window the old token is refused, the new one works",
            integration_rotation_without_grace,
        ),
    ]


if __name__ == "__main__":
    run("beatbox", ["soap"], scenarios)
