// The web UI end to end, in headless Chromium (Debian's /usr/bin/chromium driven by npm
// playwright-core), against a running keyward server. What a person does in a browser:
// log in through identity verification (reading the code from the mail file), reset the
// security token, make and use an integration token, change the password, enrol an
// authenticator, and — as an admin in Setup —
// add a trusted range, deactivate a user, filter and export login history.
//
// Environment (set by tests/browser.rs; see tests/clients/README.md):
//   KEYWARD_TEST_URL, KEYWARD_TEST_BIN, KEYWARD_DATA_DIR   as for jsforce_test.mjs
//   KEYWARD_TEST_CHROMIUM      the browser (default /usr/bin/chromium)
//   KEYWARD_TEST_SCREENSHOTS   where to save screenshots of the main pages (default: none)
//
// Prints one TAP-like line per scenario and exits 0 only when every scenario passed.

import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

for (const name of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) {
  delete process.env[name];
}
const { chromium } = await import('playwright-core').catch((e) => {
  console.log(`not ok - setup: cannot load playwright-core (run npm ci --prefix tests/clients): ${e.message}`);
  process.exit(2);
});
const { default: jsforce } = await import('jsforce');

const BASE = requiredEnv('KEYWARD_TEST_URL').replace(/\/+$/, '');
const BIN = requiredEnv('KEYWARD_TEST_BIN');
const MAIL_DIR = join(requiredEnv('KEYWARD_DATA_DIR'), 'mail');
const CHROMIUM = process.env.KEYWARD_TEST_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.KEYWARD_TEST_SCREENSHOTS || '';

setTimeout(() => {
  console.log('not ok - the whole run: still running after 600 s');
  process.exit(1);
}, 600_000).unref();

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.log(`not ok - environment: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const rand = () => randomBytes(4).toString('hex');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CLI_ENV = { ...process.env };

function keyward(args, input) {
  try {
    return execFileSync(BIN, args, { input: input ?? '', encoding: 'utf8', stdio: 'pipe', env: CLI_ENV }).trim();
  } catch (e) {
    throw new Error(`keyward ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Every mail file to ADDRESS, oldest first: { subject, body }. */
function mailsTo(address) {
  let files = [];
  try {
    files = readdirSync(MAIL_DIR).filter((f) => f.endsWith('.eml')).sort();
  } catch {
    return [];
  }
  const out = [];
  for (const file of files) {
    const text = readFileSync(join(MAIL_DIR, file), 'utf8');
    const [head, ...rest] = text.split(/\r?\n\r?\n/);
    const headers = head.split(/\r?\n/);
    if (!headers.includes(`To: ${address}`)) continue;
    const subject = (headers.find((h) => h.startsWith('Subject: ')) || '').slice(9);
    out.push({ subject, body: rest.join('\n\n') });
  }
  return out;
}

/** Waits (up to 15 s) for a mail to ADDRESS matching RE, beyond the first SKIP such mails; the
 * first capture group of RE in the newest one. */
async function mailed(address, re, skip = 0) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hits = mailsTo(address)
      .map((m) => re.exec(m.body))
      .filter(Boolean);
    if (hits.length > skip) return hits[hits.length - 1][1];
    if (Date.now() > deadline) throw new Error(`no mail to ${address} matching ${re} (${hits.length} so far)`);
    await sleep(100);
  }
}

const TOKEN_RE = /^Security token \(case-sensitive\): ([A-Za-z0-9]{24})\r?$/m;
const CODE_RE = /^Verification code: (\d{6})\r?$/m;
const INTEGRATION_RE = /^Integration token \(case-sensitive\): (kwi_[A-Za-z0-9]{36})\r?$/m;
const count = (address, re) => mailsTo(address).filter((m) => re.test(m.body)).length;

/** Login history rows of USER, newest first. */
function history(user) {
  return JSON.parse(keyward(['login-history', '--user', user, '--limit', '1000', '--format', 'json']));
}

// ---------------------------------------------------------------------------------------------
// The browser

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});

/** A fresh browser (no cookies: an unverified browser) with one page. */
async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  return page;
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Every visible form control on the page has a label (its own <label>, aria-label or
 * aria-labelledby): checked on every page a scenario visits. */
async function checkLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML),
  );
  check(unlabelled.length === 0, `unlabelled controls on ${page.url()}: ${unlabelled.join(' ')}`);
}

async function visit(page, path) {
  const response = await page.goto(`${BASE}${path}`);
  await checkLabelled(page);
  return response;
}

/** Logs in with the keyboard alone: Tab into the fields, type, Enter. */
async function typeLogin(page, username, password) {
  await visit(page, '/');
  await page.keyboard.press('Tab'); // the skip link
  await page.keyboard.press('Tab'); // the brand link
  await page.keyboard.press('Tab'); // username (also autofocused)
  await page.locator('#username').focus();
  await page.keyboard.type(username);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await Promise.all([page.waitForEvent('framenavigated'), page.keyboard.press('Enter')]);
  await page.waitForLoadState('load');
  await checkLabelled(page);
}

/** Logs in, answering the identity-verification challenge from the mail when it comes. */
async function loginVerified(page, user) {
  const codesBefore = count(user.email, CODE_RE);
  await typeLogin(page, user.username, user.password);
  if (new URL(page.url()).pathname === '/verify') {
    const code = await mailed(user.email, CODE_RE, codesBefore);
    await page.getByLabel('Verification code').fill(code);
    await Promise.all([page.waitForURL(/\/settings/), page.getByRole('button', { name: 'Verify' }).click()]);
  }
  await checkLabelled(page);
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one org, an admin and users made with the CLI.

const ORG = keyward(['org', 'create', '--name', 'Acme']);

async function newUser({ profile } = {}) {
  const username = `user-${rand()}@example.test`;
  const password = `Passw0rd-${rand()}`;
  const args = ['user', 'create', '--org', ORG, '--username', username, '--email', username, '--first-name', 'Ada', '--last-name', 'Lovelace', '--password-stdin'];
  if (profile) args.push('--profile', profile);
  const id = keyward(args, `${password}\n`);
  const token = await mailed(username, TOKEN_RE);
  return { username, email: username, password, id, token };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario('R-U1: a browser login from outside the trusted ranges is verified with an emailed code', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await visit(page, '/');
  await shot(page, 'login');
  await typeLogin(page, ada.username, ada.password);
  check(new URL(page.url()).pathname === '/verify', `expected the verification page, got ${page.url()}`);
  await page.getByText('We sent a verification code').waitFor();
  const rows = history(ada.username);
  check(rows[0].status === 'Failed: Computer activation required', `history says ${rows[0].status}`);
  check(rows[0].login_type === 'Application', `login type ${rows[0].login_type}`);
  // A wrong code first: refused, with the tries left.
  await page.getByLabel('Verification code').fill('000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('That code is not right').waitFor();
  await shot(page, 'verify');
  const code = await mailed(ada.email, CODE_RE);
  const subject = mailsTo(ada.email).filter((m) => CODE_RE.test(m.body)).pop().subject;
  check(subject === 'Verify your identity', `subject ${subject}`);
  await page.getByLabel('Verification code').fill(code);
  await Promise.all([page.waitForURL(/\/settings$/), page.getByRole('button', { name: 'Verify' }).click()]);
  await page.getByRole('heading', { name: 'My Personal Information' }).waitFor();
  check((await page.textContent('main')).includes(ada.username), 'the page does not name the user');
  check(history(ada.username)[0].status === 'Success', 'no Success row after verification');
  // Cookies: HttpOnly, SameSite=Lax.
  const cookies = await page.context().cookies();
  const sid = cookies.find((c) => c.name === 'kw_sid');
  check(sid && sid.httpOnly && sid.sameSite === 'Lax', `session cookie ${JSON.stringify(sid)}`);
  // The same browser is verified now: logging out and in again needs no code.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  check(!(await page.context().cookies()).some((c) => c.name === 'kw_sid' && c.value === sid.value), 'the old session cookie survived logout');
  const codes = count(ada.email, CODE_RE);
  await typeLogin(page, ada.username, ada.password);
  check(new URL(page.url()).pathname === '/settings', `a verified browser was challenged again: ${page.url()}`);
  check(count(ada.email, CODE_RE) === codes, 'a code was mailed to a verified browser');
  const newSid = (await page.context().cookies()).find((c) => c.name === 'kw_sid');
  check(newSid.value !== sid.value, 'the session id was not rotated at login');
  await page.context().close();
});

scenario('R-L4: a wrong password gets the generic error and no challenge', async () => {
  const ada = await newUser();
  const page = await freshPage();
  const codes = count(ada.email, CODE_RE);
  await typeLogin(page, ada.username, 'Wr0ng-password');
  await page.getByText('Please check your username and password').waitFor();
  await typeLogin(page, `nobody-${rand()}@example.test`, ada.password);
  await page.getByText('Please check your username and password').waitFor();
  check(count(ada.email, CODE_RE) === codes, 'a wrong password triggered a verification mail');
  check(history(ada.username)[0].status === 'Invalid password', 'no Invalid password row');
  await page.context().close();
});

scenario('R-T5: Reset My Security Token warns, resets and emails the new token', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await loginVerified(page, ada);
  await shot(page, 'personal-information');
  await page.getByRole('link', { name: 'Reset My Security Token' }).click();
  await page.getByText('Every integration that uses your current security token will stop working').waitFor();
  await shot(page, 'reset-token');
  const before = count(ada.email, TOKEN_RE);
  await page.getByRole('button', { name: 'Reset Security Token' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  const token = await mailed(ada.email, TOKEN_RE, before);
  check(token !== ada.token, 'the token did not change');
  check(!(await page.content()).includes(token), 'R-T2: the page shows the token');
  // The old token stops working, the new one works (jsforce over SOAP from 127.0.0.1, untrusted).
  const conn = new jsforce.Connection({ loginUrl: BASE, version: '59.0' });
  await conn.login(ada.username, ada.password + token);
  let refused = false;
  try {
    await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(ada.username, ada.password + ada.token);
  } catch (e) {
    refused = e.message.startsWith('LOGIN_MUST_USE_SECURITY_TOKEN');
  }
  check(refused, 'the old token still works');
  await page.context().close();
});

scenario('Integration tokens: made under My Settings, mailed, used by jsforce as the password, refused by the login page', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await loginVerified(page, ada);
  await click(page, 'link', 'Integration Tokens');
  await page.getByText('It is never shown on screen').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Nightly export');
  await page.getByLabel('Expires after (days)').fill('30');
  const before = count(ada.email, INTEGRATION_RE);
  await click(page, 'button', 'Create and email token');
  await page.getByText('on its way to your email').waitFor();
  const token = await mailed(ada.email, INTEGRATION_RE, before);
  check(!(await page.content()).includes(token), 'the page shows the integration token');
  await shot(page, 'integration-tokens');
  // The token alone is the password: no security token, from an address outside the trusted ranges.
  await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(ada.username, token);
  await visit(page, '/settings/integration-tokens');
  await page.getByRole('cell', { name: '127.0.0.1', exact: true }).waitFor();
  await click(page, 'link', 'Where Nightly export (active) was used');
  await page.getByRole('heading', { name: 'Where it was used' }).waitFor();
  const uses = await page.locator('tbody tr td:nth-child(5)').allTextContents();
  check(uses.length === 1 && uses[0] === '1', `usage rows: ${uses}`);
  await shot(page, 'integration-token-usage');
  // The login page answers as to a wrong password, and sends no verification code.
  const codes = count(ada.email, CODE_RE);
  const fresh = await freshPage();
  await typeLogin(fresh, ada.username, token);
  await fresh.getByText('Please check your username and password').waitFor();
  check(new URL(fresh.url()).pathname !== '/settings', 'the integration token opened the web UI');
  check(count(ada.email, CODE_RE) === codes, 'a verification code was mailed for an integration token');
  check(history(ada.username)[0].status === 'Failed: integration token in the web UI', 'no web UI refusal row');
  await page.context().close();
  await fresh.context().close();
});

scenario('R-T9: no reset link for a user whose profile has login IP ranges', async () => {
  const profile = `Office ${rand()}`;
  keyward(['profile', 'create', '--org', ORG, '--name', profile]);
  keyward(['profile', 'login-ip', 'add', ORG, profile, '127.0.0.0', '127.255.255.255']);
  const bob = await newUser({ profile });
  const page = await freshPage();
  // Inside the profile's login ranges: trusted, so no verification either (R-L2).
  await typeLogin(page, bob.username, bob.password);
  check(new URL(page.url()).pathname === '/settings', `expected settings, got ${page.url()}`);
  check((await page.getByRole('link', { name: 'Reset My Security Token' }).count()) === 0, 'the reset link is shown');
  const response = await visit(page, '/settings/token');
  check(response.status() === 403, `the reset page answered ${response.status()}`);
  await page.getByText('has login IP ranges').waitFor();
  check((await page.getByRole('button', { name: 'Reset Security Token' }).count()) === 0, 'the reset button is shown');
  await page.context().close();
});

scenario('R-T6: changing the password emails a new token and ends the other sessions', async () => {
  const ada = await newUser();
  const other = await freshPage();
  await loginVerified(other, ada);
  const page = await freshPage();
  await loginVerified(page, ada);
  await page.getByRole('link', { name: 'Change My Password' }).click();
  await shot(page, 'change-password');
  const newPassword = `N3w-password-${rand()}`;
  await page.getByLabel('Current password').fill(ada.password);
  await page.getByLabel('New password', { exact: true }).fill(newPassword);
  await page.getByLabel('Confirm new password').fill(newPassword);
  const before = count(ada.email, TOKEN_RE);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('Your password was changed').waitFor();
  const token = await mailed(ada.email, TOKEN_RE, before);
  check(token !== ada.token, 'no new token');
  // This session goes on; the other browser's session ended (R-L10).
  await visit(page, '/settings');
  check(new URL(page.url()).pathname === '/settings', 'the changing session was ended');
  await visit(other, '/settings');
  check(new URL(other.url()).pathname === '/', `the other session still works: ${other.url()}`);
  // The new password and token work over the API.
  await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(ada.username, newPassword + token);
  await page.context().close();
  await other.context().close();
});

scenario('R-U2: with an authenticator enrolled, the challenge asks for its code', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await loginVerified(page, ada);
  await page.getByRole('link', { name: 'Authenticator App' }).click();
  await page.getByLabel('Your password').fill(ada.password);
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  const key = (await page.locator('main code').first().textContent()).trim();
  check((await page.locator('.qr svg').count()) === 1, 'no QR code');
  await shot(page, 'authenticator');
  const step = Math.floor(Date.now() / 1000 / 30);
  await page.getByLabel('Code from the app').fill(totp(key, step));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
  const recovery = (await page.locator('.codes li').allTextContents()).map((s) => s.trim());
  check(recovery.length === 10, `${recovery.length} recovery codes`);
  // A new browser: challenged for the authenticator's code, not mailed one.
  const codes = count(ada.email, CODE_RE);
  const fresh = await freshPage();
  await typeLogin(fresh, ada.username, ada.password);
  await fresh.getByText('Enter the 6-digit code from your authenticator app').waitFor();
  check(count(ada.email, CODE_RE) === codes, 'a code was mailed to a TOTP user');
  // The code already used is refused (a code works once, and later it is too old); a recovery
  // code works.
  await fresh.getByLabel('Authenticator or recovery code').fill(totp(key, step));
  await fresh.getByRole('button', { name: 'Verify' }).click();
  await fresh.getByText('That code is not right').waitFor();
  await fresh.getByLabel('Authenticator or recovery code').fill(recovery[0]);
  await Promise.all([fresh.waitForURL(/\/settings$/), fresh.getByRole('button', { name: 'Verify' }).click()]);
  await page.context().close();
  await fresh.context().close();
});

scenario('R-L10: My Login History lists my logins; ending a session from Sessions logs that browser out', async () => {
  const ada = await newUser();
  const other = await freshPage();
  await loginVerified(other, ada);
  const page = await freshPage();
  await loginVerified(page, ada);
  await click(page, 'link', 'My Login History');
  const statuses = await page.locator('tbody tr td:nth-child(4)').allTextContents();
  check(statuses.filter((s) => s === 'Success').length === 2, `history: ${statuses}`);
  check(statuses.filter((s) => s === 'Failed: Computer activation required').length === 2, `history: ${statuses}`);
  await click(page, 'link', 'Sessions and Browsers');
  await shot(page, 'sessions');
  check((await page.getByText('This session').count()) === 1, 'the current session is not marked');
  // Sessions, then OAuth refresh tokens (none: this user logged in only in browsers), then browsers.
  check((await page.getByText('No refresh tokens.').count()) === 1, 'refresh tokens are listed');
  const verified = await page.locator('table').nth(2).locator('tbody tr').count();
  check(verified === 2, `${verified} verified browsers listed`);
  await click(page, 'button', /End the Application session/);
  await page.getByText('The session was ended.').waitFor();
  await visit(other, '/settings');
  check(new URL(other.url()).pathname === '/', `the ended session still works: ${other.url()}`);
  await visit(page, '/settings');
  check(new URL(page.url()).pathname === '/settings', 'the current session ended too');
  await page.context().close();
  await other.context().close();
});

scenario('Keyboard only: log in, open Reset My Security Token and reset it without a mouse', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await loginVerified(page, ada); // typeLogin already uses only the keyboard
  /** Presses Tab until the focused element's text is NAME (at most 40 times). */
  async function tabTo(name) {
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const text = await page.evaluate(() => (document.activeElement && document.activeElement.textContent || '').trim());
      if (text === name) return;
    }
    throw new Error(`Tab never reached ${name}`);
  }
  await tabTo('Reset My Security Token');
  await Promise.all([page.waitForEvent('framenavigated'), page.keyboard.press('Enter')]);
  await page.getByRole('heading', { name: 'Reset My Security Token' }).waitFor();
  // The focus ring is visible (an outline), so a keyboard user sees where they are.
  await tabTo('Reset Security Token');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', `no visible focus on the button (outline-style ${outline})`);
  const before = count(ada.email, TOKEN_RE);
  await Promise.all([page.waitForEvent('framenavigated'), page.keyboard.press('Enter')]);
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await mailed(ada.email, TOKEN_RE, before);
  await page.context().close();
});

/** A new org with its own admin (System Administrator), logged in in a fresh browser. */
let orgs = 0;
async function newOrgWithAdmin() {
  orgs += 1;
  const org = keyward(['org', 'create', '--name', `Globex ${orgs}`]);
  const username = `admin-${rand()}@example.test`;
  const password = `Adm1n-${rand()}`;
  keyward(['user', 'create', '--org', org, '--username', username, '--email', username, '--first-name', 'Grace', '--last-name', 'Hopper', '--profile', 'System Administrator', '--password-stdin'], `${password}\n`);
  const admin = { username, email: username, password, token: await mailed(username, TOKEN_RE) };
  const page = await freshPage();
  await loginVerified(page, admin);
  return { org, admin, page };
}

async function userIn(org, { profile } = {}) {
  const username = `user-${rand()}@example.test`;
  const password = `Passw0rd-${rand()}`;
  const args = ['user', 'create', '--org', org, '--username', username, '--email', username, '--first-name', 'Alan', '--last-name', 'Turing', '--password-stdin'];
  if (profile) args.push('--profile', profile);
  const id = keyward(args, `${password}\n`);
  return { username, email: username, password, id, token: await mailed(username, TOKEN_RE) };
}

async function click(page, role, name) {
  await Promise.all([page.waitForEvent('framenavigated'), page.getByRole(role, { name }).click()]);
  await page.waitForLoadState('load');
  await checkLabelled(page);
}

scenario('Setup: an admin adds a trusted range and the next browser login skips verification', async () => {
  const { org, page } = await newOrgWithAdmin();
  const carol = await userIn(org);
  await click(page, 'link', 'Setup');
  await page.getByRole('heading', { name: 'Users' }).waitFor();
  await shot(page, 'setup-users');
  await click(page, 'link', 'Network Access');
  await page.getByLabel('Start IP address (or CIDR)').fill('127.0.0.0/8');
  await page.getByLabel('Description').fill('loopback');
  await click(page, 'button', 'Add range');
  await page.getByText('The range was added.').waitFor();
  await page.getByRole('cell', { name: '127.255.255.255', exact: true }).waitFor();
  await shot(page, 'setup-network-access');
  const codes = count(carol.email, CODE_RE);
  const fresh = await freshPage();
  await typeLogin(fresh, carol.username, carol.password);
  check(new URL(fresh.url()).pathname === '/settings', `expected no challenge inside a trusted range, got ${fresh.url()}`);
  check(count(carol.email, CODE_RE) === codes, 'a verification code was mailed inside a trusted range');
  check(history(carol.username)[0].status === 'Success', 'no Success row');
  // The audit trail names the change and the admin.
  await click(page, 'link', 'Setup Audit Trail');
  await page.getByRole('cell', { name: /Added trusted IP range: 127\.0\.0\.0/ }).waitFor();
  await shot(page, 'setup-audit-trail');
  await page.context().close();
  await fresh.context().close();
});

scenario('Setup: deactivating a user ends their jsforce session', async () => {
  const { org, page } = await newOrgWithAdmin();
  const dave = await userIn(org);
  const conn = new jsforce.Connection({ loginUrl: BASE, version: '59.0' });
  await conn.login(dave.username, dave.password + dave.token);
  const id = await conn.identity();
  check(id.username === dave.username, `identity answered ${JSON.stringify(id)}`);
  await click(page, 'link', 'Setup');
  await click(page, 'link', 'Alan Turing');
  await page.getByText(dave.username).first().waitFor();
  await shot(page, 'setup-user');
  await click(page, 'button', 'Deactivate');
  await page.getByText('The user was deactivated').waitFor();
  let failed = false;
  try {
    await conn.identity({ headers: {} });
  } catch (e) {
    failed = true;
  }
  check(failed, 'the jsforce session still works after deactivation');
  let refused = '';
  try {
    await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(dave.username, dave.password + dave.token);
  } catch (e) {
    refused = e.message;
  }
  check(refused.startsWith('INVALID_LOGIN'), `a new login was not refused: ${refused}`);
  check(history(dave.username)[0].status === 'User is inactive', 'no User is inactive row');
  await page.context().close();
});

scenario('Setup: login history filters, CSV export and the per-hour chart', async () => {
  const { org, page } = await newOrgWithAdmin();
  const erin = await userIn(org);
  for (let i = 0; i < 3; i++) {
    try {
      await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(erin.username, `Wrong-${i}`);
    } catch {
      // expected
    }
  }
  await new jsforce.Connection({ loginUrl: BASE, version: '59.0' }).login(erin.username, erin.password + erin.token);
  await click(page, 'link', 'Setup');
  await click(page, 'link', 'Login History');
  await page.locator('.chart svg rect.ok').first().waitFor();
  check((await page.locator('.chart svg rect.fail').count()) >= 1, 'no failure bar in the chart');
  await shot(page, 'setup-login-history');
  // Filter: this user's failed passwords only.
  await page.getByLabel('User').fill(erin.username);
  await page.getByLabel('Status').selectOption('Invalid password');
  await click(page, 'button', 'Filter');
  const statuses = await page.locator('tbody tr td:nth-child(5)').allTextContents();
  check(statuses.length === 3 && statuses.every((s) => s === 'Invalid password'), `filtered rows: ${statuses}`);
  const users = await page.locator('tbody tr td:nth-child(2)').allTextContents();
  check(users.every((u) => u === erin.username), `other users in the filtered rows: ${users}`);
  // Login type filter: SOAP only, so the admin's Application logins are gone.
  await page.getByLabel('User').fill('');
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Login type').selectOption('SOAP Partner');
  await click(page, 'button', 'Filter');
  const types = await page.locator('tbody tr td:nth-child(4)').allTextContents();
  check(types.length === 4 && types.every((t) => t === 'SOAP Partner'), `rows by type: ${types}`);
  // A time range in the future matches nothing.
  await page.getByLabel('From (UTC)').fill('2099-01-01T00:00');
  await click(page, 'button', 'Filter');
  await page.getByText('No login attempts match.').waitFor();
  await page.getByLabel('From (UTC)').fill('');
  await page.getByLabel('Login type').selectOption('');
  await page.getByLabel('User').fill(erin.username);
  await click(page, 'button', 'Filter');
  // CSV: the same rows, as a download.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
  check(csv[0] === 'id,login_time,username,user_id,org_id,source_ip,login_type,status,client,api_version,login_url,credential', `CSV header ${csv[0]}`);
  check(csv.length === 5, `CSV has ${csv.length - 1} rows, expected 4`);
  check(csv.slice(1).every((l) => l.includes(erin.username)), 'CSV rows of other users');
  check(csv.filter((l) => l.includes(',Invalid password,')).length === 3, 'CSV lacks the failures');
  await page.context().close();
});

scenario('R-M1: Setup is for admins; a standard user gets 403', async () => {
  const ada = await newUser();
  const page = await freshPage();
  await loginVerified(page, ada);
  check((await page.getByRole('link', { name: 'Setup' }).count()) === 0, 'a standard user sees the Setup link');
  const response = await visit(page, '/setup/users');
  check(response.status() === 403, `/setup/users answered ${response.status()} to a standard user`);
  await page.context().close();
});

scenario('Setup: OAuth client secret shown once; profiles, policies and the email log render', async () => {
  const { page } = await newOrgWithAdmin();
  await click(page, 'link', 'Setup');
  await click(page, 'link', 'OAuth Clients');
  await page.getByLabel('Name', { exact: true }).fill('Integration');
  await click(page, 'button', 'Create client');
  const secret = (await page.locator('#client-secret').textContent()).trim();
  check(secret.length >= 32, `secret ${secret.length} characters`);
  await shot(page, 'setup-oauth-client');
  await visit(page, '/setup/oauth');
  check(!(await page.content()).includes(secret), 'the secret is shown again');
  for (const [link, heading] of [
    ['Profiles', 'Profiles'],
    ['Password Policies', 'Password Policies'],
    ['Session Settings', 'Session Settings'],
    ['Single Sign-On', 'Single Sign-On Settings'],
    ['Email Log', 'Email Log'],
  ]) {
    await click(page, 'link', link);
    await page.getByRole('heading', { name: heading }).waitFor();
  }
  await click(page, 'link', 'Profiles');
  await click(page, 'link', 'Standard User');
  await shot(page, 'setup-profile');
  await page.context().close();
});

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 KEY at time step STEP. */
function totp(key, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of key.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

// ---------------------------------------------------------------------------------------------

let failed = 0;
for (const { name, fn } of scenarios) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name}: ${String(e.stack || e).replace(/\n/g, '\n#   ')}`);
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
