"""Drives the real simple-salesforce client (PyPI `simple-salesforce`, pinned in
tests/requirements.txt) against a running keyward server, through both of its login modes:

    SOAP login():          Salesforce(username=U, password=P, security_token=T, session=s)
    OAuth password grant:  Salesforce(username=U, password=P + T, consumer_key=ID,
                                      consumer_secret=SECRET, session=s)

and, with an integration token K in place of the password and no security token:
    Salesforce(username=U, password=K, security_token='', session=s)                  (SOAP)
    Salesforce(username=U, password=K, consumer_key=ID, consumer_secret=SECRET, session=s) (OAuth)

simple-salesforce only ever builds https://login.salesforce.com/... (SOAP login, OAuth token) and
https://{instance}/... URLs: it cannot be given http://127.0.0.1:PORT. So it gets a `requests`
session whose https:// adapter rewrites every URL to the keyward server (docs/wire.md §3),
with `trust_env = False` so that no *_PROXY variable sends loopback traffic elsewhere.

simple-salesforce has no logout and no identity call: this test posts SOAP getUserInfo/logout
envelopes and calls the identity URL itself, through the client's own session.

Run by hand (tests/clients/README.md):
    KEYWARD_TEST_URL=... KEYWARD_TEST_BIN=... KEYWARD_DATA_DIR=... python tests/clients/ssf_test.py
Prints one TAP-like line per scenario and exits 0 only when every scenario passed.
"""

from urllib.parse import urlsplit, urlunsplit
from xml.dom.minidom import parseString

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed

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


class RedirectToLocal(HTTPAdapter):
    """Sends every https:// request to TARGET (keyward, over http), keeping path and query."""

    def __init__(self, target, **kwargs):
        super().__init__(**kwargs)
        self.target = urlsplit(target)

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        request.headers["X-Forwarded-Host"] = url.netloc  # the host the client meant
        request.url = urlunsplit((self.target.scheme, self.target.netloc, url.path, url.query, url.fragment))
        return super().send(request, **kwargs)


def client_session():
    s = requests.Session()
    s.trust_env = False
    s.mount("https://", RedirectToLocal(URL))
    # Remember the last answer, to look at the wire (OAuth error_code) behind the client's exception.
    s.last_response = None

    def remember(response, *args, **kwargs):
        s.last_response = response

    s.hooks["response"].append(remember)
    return s


class Mode:
    """One org with its own users, logging in through one of simple-salesforce's modes."""

    def __init__(self, mode):
        self.mode = mode
        self.org = keyward("org", "create", "--name", f"ssf-{mode}-{rand()}")
        if mode == "oauth":
            self.client_id, self.client_secret = keyward(
                "oauth", "client", "create", "--org", self.org, "--name", "app"
            ).splitlines()

    def login(self, username, password, token, session=None):
        """Logs in; TOKEN is '' for the password alone."""
        s = session or client_session()
        if self.mode == "soap":
            # security_token='' still selects the SOAP path (ssf tests `is not None`) and sends
            # <password>{password}{security_token}</password>, i.e. the password alone.
            return Salesforce(username=username, password=password, security_token=token, session=s)
        return Salesforce(
            username=username,
            password=password + token,  # the OAuth path has no token argument: append it yourself
            consumer_key=self.client_id,
            consumer_secret=self.client_secret,
            session=s,
        )

    def login_with_integration_token(self, username, integration_token, session=None):
        """Logs in with an integration token: it is the whole password, no security token."""
        s = session or client_session()
        if self.mode == "soap":
            return Salesforce(username=username, password=integration_token, security_token="", session=s)
        return Salesforce(
            username=username,
            password=integration_token,
            consumer_key=self.client_id,
            consumer_secret=self.client_secret,
            session=s,
        )

    def expect_refused(self, username, password, token, code):
        """simple-salesforce raises SalesforceAuthenticationFailed(code, message):
        SOAP:  code = the fault's sf:exceptionCode (CODE);
        OAuth: code = error ('invalid_grant'), message = error_description ('authentication
               failure'); keyward's extra error_code (LOGIN_MUST_USE_SECURITY_TOKEN, or none for
               INVALID_LOGIN) is on the wire only, so it is read from the response itself."""
        s = client_session()
        try:
            sf = self.login(username, password, token, session=s)
        except SalesforceAuthenticationFailed as e:
            if self.mode == "soap":
                check(e.code == code, f"expected {code}, got {e}")
                return
            check(
                (e.code, e.auth_message) == ("invalid_grant", "authentication failure"),
                f"expected invalid_grant/authentication failure, got {e}",
            )
            r = s.last_response
            check(r.status_code == 400, f"OAuth refusal with HTTP {r.status_code}, expected 400")
            error_code = r.json().get("error_code")
            expected = code if code == MUST_USE_TOKEN else None
            check(error_code == expected, f"OAuth error_code {error_code!r}, expected {expected!r}")
            return
        raise Failed(f"login succeeded (session {sf.session_id[:15]}...) but {code} was expected")


# -------------------------------------------------------------------------------------------------
# Calls simple-salesforce has no helper for, made through the client's own session and fields


def soap_call(sf, operation):
    """POSTs a SOAP OPERATION (getUserInfo, logout) with sf.session_id to
    https://{sf.sf_instance}/services/Soap/u/{version}; returns (HTTP status, parsed XML)."""
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
        f"<env:Header><urn:SessionHeader><urn:sessionId>{sf.session_id}</urn:sessionId></urn:SessionHeader></env:Header>"
        f"<env:Body><urn:{operation}/></env:Body></env:Envelope>"
    )
    r = sf.session.post(
        f"https://{sf.sf_instance}/services/Soap/u/{sf.sf_version}",
        data=envelope.encode("utf-8"),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
    )
    return r.status_code, parseString(r.content)


def text_of(dom, tag):
    nodes = dom.getElementsByTagName(tag)
    return nodes[0].firstChild.nodeValue if nodes and nodes[0].firstChild else None


def identity(sf, org_id, user_id):
    """GET {URL}/id/{orgId}/{userId}?format=json with `Authorization: Bearer <session>`."""
    return sf.session.get(
        f"{URL}/id/{org_id}/{user_id}",
        params={"format": "json"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )


# -------------------------------------------------------------------------------------------------
# Scenarios


def scenarios(mode):
    m = Mode(mode)
    org = m.org

    def success():
        user, password, token, user_id = new_user(org)
        sf = expect_history(user, "Success", lambda: m.login(user, password, token))
        check(sf.session_id, "no session id")
        check(
            sf.sf_instance == urlsplit(URL).netloc,
            f"sf_instance {sf.sf_instance!r}, expected {urlsplit(URL).netloc!r}",
        )
        r = identity(sf, org, user_id)
        check(r.status_code == 200, f"identity URL answered {r.status_code} {r.text[:200]}")
        body = r.json()
        check(
            (body["user_id"], body["organization_id"], body["username"]) == (user_id, org, user),
            f"identity says {body['user_id']}/{body['organization_id']}/{body['username']}",
        )
        if mode == "soap":
            status, dom = soap_call(sf, "getUserInfo")
            check(status == 200, f"getUserInfo answered {status}: {dom.toxml()[:300]}")
            check(text_of(dom, "userId") == user_id, f"getUserInfo userId {text_of(dom, 'userId')}")
            check(text_of(dom, "userName") == user, f"getUserInfo userName {text_of(dom, 'userName')}")

    def password_alone():
        user, password, _token, _ = new_user(org)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: m.expect_refused(user, password, "", MUST_USE_TOKEN),
        )

    def trusted_range():
        user, password, _token, _ = new_user(org)
        range_id = keyward("network", "add", org, "127.0.0.1", "127.0.0.1", "--description", "test")
        try:
            expect_history(user, "Success", lambda: m.login(user, password, ""))
        finally:
            keyward("network", "remove", org, range_id)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: m.expect_refused(user, password, "", MUST_USE_TOKEN),
        )

    def token_reset():
        user, password, old_token, _ = new_user(org)
        keyward("token", "reset", user)
        new_token = token_mailed_to(user, not_this=old_token)
        expect_history(
            user,
            "Failed: API security token required",
            lambda: m.expect_refused(user, password, old_token, MUST_USE_TOKEN),
        )
        expect_history(user, "Success", lambda: m.login(user, password, new_token))

    def locked_out():
        keyward("policy", "set", org, "--lockout-attempts", "3")
        user, password, token, _ = new_user(org)
        for i in range(3):
            expect_history(
                user,
                "Invalid password",
                lambda: m.expect_refused(user, f"Wrong-{i}-{rand()}", "", INVALID_LOGIN),
            )
        expect_history(
            user, "Password lockout", lambda: m.expect_refused(user, password, token, INVALID_LOGIN)
        )

    def deactivated():
        user, password, token, _ = new_user(org)
        keyward("user", "deactivate", user)
        expect_history(
            user, "User is inactive", lambda: m.expect_refused(user, password, token, INVALID_LOGIN)
        )

    def unknown_user():
        m.expect_refused(f"nobody-{rand()}@example.test", f"Passw0rd-{rand()}", "", INVALID_LOGIN)

    def restricted_ip():
        keyward("profile", "create", "--org", org, "--name", "Office Only")
        keyward("profile", "login-ip", "add", org, "Office Only", "10.0.0.0", "10.0.0.255")
        user, password, token, _ = new_user(org, profile="Office Only")
        expect_history(user, "Restricted IP", lambda: m.expect_refused(user, password, token, INVALID_LOGIN))

    def logout():
        user, password, token, user_id = new_user(org)
        sf = m.login(user, password, token)
        check(identity(sf, org, user_id).status_code == 200, "the identity URL refused a fresh session")
        if mode == "soap":
            check(soap_call(sf, "getUserInfo")[0] == 200, "getUserInfo refused a fresh session")
            # SOAP logout(), posted like getUserInfo: simple-salesforce has no logout helper.
            status, dom = soap_call(sf, "logout")
            check(status == 200, f"logout answered {status}: {dom.toxml()[:300]}")
            status, dom = soap_call(sf, "getUserInfo")
            check(
                status == 500 and text_of(dom, "faultcode") == "sf:INVALID_SESSION_ID",
                f"getUserInfo after logout answered {status}: {dom.toxml()[:300]}",
            )
        else:
            # OAuth revoke on the login host (sf.auth_site = https://login.salesforce.com, rewritten).
            r = sf.session.post(f"{sf.auth_site}/services/oauth2/revoke", data={"token": sf.session_id})
            check(r.status_code == 200, f"revoke answered {r.status_code} {r.text[:200]}")
        r = identity(sf, org, user_id)
        check(
            (r.status_code, r.text) == (403, "Bad_OAuth_Token"),
            f"identity URL after logout answered {r.status_code} {r.text[:200]}",
        )

    # Integration tokens (issue 17). The org has no trusted range, so 127.0.0.1 is an untrusted
    # address here (password_alone shows it); a token is refused as the password is: INVALID_LOGIN
    # (OAuth: invalid_grant), with login history saying why.

    def integration_token():
        user, _password, _token, user_id = new_user(org)
        name = f"nightly-sync-{rand()}"
        token_id, integration_token = new_integration_token(user, name)
        sf = expect_history(
            user,
            "Success",
            lambda: m.login_with_integration_token(user, integration_token),
            credential=f"Integration token: {name}",
        )
        r = identity(sf, org, user_id)
        check(r.status_code == 200, f"identity URL answered {r.status_code} {r.text[:200]}")
        uses = integration_usage(token_id)
        check(
            [(u["source_ip"], u["uses"]) for u in uses] == [("127.0.0.1", 1)],
            f"keyward integration usage says {uses}",
        )

    def integration_token_revoked():
        user, _password, _token, user_id = new_user(org)
        token_id, integration_token = new_integration_token(user, "to revoke")
        sf = expect_history(user, "Success", lambda: m.login_with_integration_token(user, integration_token))
        keyward("integration", "revoke", token_id)
        # What its logins created ends with it: the session it opened too.
        eventually(
            lambda: identity(sf, org, user_id).status_code == 403,
            "the session the revoked token opened still works",
        )
        expect_history(
            user,
            "Failed: integration token invalid",
            lambda: m.expect_refused(user, integration_token, "", INVALID_LOGIN),
            credential="Integration token: to revoke",
        )

    def integration_token_expired():
        user, *_ = new_user(org)
        token_id, integration_token = new_integration_token(user, "to expire")
        expire_integration_token(token_id)
        expect_history(
            user,
            "Failed: integration token expired",
            lambda: m.expect_refused(user, integration_token, "", INVALID_LOGIN),
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
            lambda: m.login_with_integration_token(user, old),
            credential="Integration token: rotated (predecessor in grace)",
        )
        expect_history(
            user,
            "Success",
            lambda: m.login_with_integration_token(user, new),
            credential="Integration token: rotated",
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
            lambda: m.expect_refused(user, old, "", INVALID_LOGIN),
            credential="Integration token: rotated",
        )
        expect_history(
            user,
            "Success",
            lambda: m.login_with_integration_token(user, new),
            credential="Integration token: rotated",
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
    run("simple-salesforce", ["soap", "oauth"], scenarios)
