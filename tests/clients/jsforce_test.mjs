// Drives the real jsforce 3 client (npm `jsforce`, pinned in package.json) against a running
// keyward server, through both of its login modes:
//
//   SOAP login():           new jsforce.Connection({ loginUrl: KEYWARD_TEST_URL, version: '59.0' })
//                           await conn.login(username, password + token)
//   OAuth password grant:   new jsforce.Connection({
//                             oauth2: { loginUrl: KEYWARD_TEST_URL, clientId, clientSecret },
//                             version: '59.0' })
//                           await conn.login(username, password + token)
//
// jsforce picks the OAuth password grant when the oauth2 options carry both a client id and a
// secret, SOAP otherwise. It takes a plain http:// loginUrl as it is; give it no trailing slash.
// With an integration token, `conn.login(username, integrationToken)`: the token is the whole
// password, with no security token after it.
//
// Environment (set by the Rust test that starts the server; see tests/clients/README.md):
//   KEYWARD_TEST_URL       base URL of the running server, e.g. http://127.0.0.1:41234
//   KEYWARD_TEST_BIN       the keyward binary, run as the admin CLI (inherits KEYWARD_DATA_DIR, ...)
//   KEYWARD_DATA_DIR  the server's data dir; the file mail transport writes $KEYWARD_DATA_DIR/mail/*.eml,
//                     and on SQLite the database is $KEYWARD_DATA_DIR/keyward.db
//
// Run by hand:  npm ci --prefix tests/clients
//               KEYWARD_TEST_URL=... KEYWARD_TEST_BIN=... KEYWARD_DATA_DIR=... node tests/clients/jsforce_test.mjs
// Prints one TAP-like line per scenario (`ok - NAME` / `not ok - NAME: DETAILS`) and exits 0 only
// when every scenario passed.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// jsforce 3 reads these when it is loaded and then sends *every* request through that proxy (it has
// no NO_PROXY logic), so they must be gone before the import below.
for (const name of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) {
  delete process.env[name];
}
const { default: jsforce } = await import('jsforce').catch((e) => {
  console.log(`not ok - setup: cannot load jsforce (run npm ci --prefix tests/clients): ${e.message}`);
  process.exit(2);
});

const URL = requiredEnv('KEYWARD_TEST_URL').replace(/\/+$/, '');
const BIN = requiredEnv('KEYWARD_TEST_BIN');
const DATA_DIR = requiredEnv('KEYWARD_DATA_DIR');
const MAIL_DIR = join(DATA_DIR, 'mail');
const API_VERSION = '59.0';

// A hung server must not hang the test forever.
setTimeout(() => {
  console.log('not ok - the whole run: still running after 300 s');
  process.exit(1);
}, 300_000).unref();

// ---------------------------------------------------------------------------------------------
// Small helpers: the admin CLI, mail, login history, assertions

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.log(`not ok - environment: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const rand = () => randomBytes(4).toString('hex');

// The CLI gets this program's environment (KEYWARD_DATA_DIR, KEYWARD_DATABASE_URL, ...: the
// server's database); keyward ignores the KEYWARD_TEST_* variables.
const CLI_ENV = { ...process.env };

/** Runs `keyward ARGS...` on the server's database, returns its trimmed stdout. */
function keyward(args, input) {
  try {
    return execFileSync(BIN, args, {
      input: input ?? '',
      encoding: 'utf8',
      stdio: 'pipe',
      env: CLI_ENV,
    }).trim();
  } catch (e) {
    throw new Error(`keyward ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** The value LINE captures in the newest mail to ADDRESS that has one; waits (up to 15 s) until
 * one other than NOT_THIS has arrived. Mail files sort oldest first. */
async function newestMailed(address, line, what, notThis) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    let newest;
    let files = [];
    try {
      files = readdirSync(MAIL_DIR)
        .filter((f) => f.endsWith('.eml'))
        .sort();
    } catch {
      // no mail directory yet
    }
    for (const file of files) {
      const text = readFileSync(join(MAIL_DIR, file), 'utf8');
      const headers = text.split(/\r?\n\r?\n/, 1)[0].split(/\r?\n/);
      const found = line.exec(text);
      if (headers.includes(`To: ${address}`) && found) newest = found[1];
    }
    if (newest && newest !== notThis) return newest;
    if (Date.now() > deadline) {
      throw new Error(`no ${notThis ? 'new ' : ''}${what} mail to ${address} in ${MAIL_DIR} after 15 s`);
    }
    await sleep(100);
  }
}

/** The newest security token mailed to ADDRESS (other than NOT_THIS). */
const tokenMailedTo = (address, notThis = undefined) =>
  newestMailed(address, /^Security token \(case-sensitive\): ([A-Za-z0-9]{24})\r?$/m, 'token', notThis);

/** The newest integration token mailed to ADDRESS (other than NOT_THIS): the mail is the only
 * place its value appears. */
const integrationTokenMailedTo = (address, notThis = undefined) =>
  newestMailed(
    address,
    /^Integration token \(case-sensitive\): (kwi_[A-Za-z0-9]{36})\r?$/m,
    'integration token',
    notThis,
  );

/** Creates integration token NAME for USER (who has none yet); returns its id and the token. */
async function newIntegrationToken(user, name) {
  const id = keyward(['integration', 'create', user, '--name', name]);
  return { id, token: await integrationTokenMailedTo(user) };
}

/** The usage inventory of an integration token: one row per (client, source address). */
const integrationUsage = (id) => JSON.parse(keyward(['integration', 'usage', id, '--format', 'json']));

/** Makes the token expired. A running server reads the real clock and no interface shortens a
 * token's life, so this moves its expires_at (epoch milliseconds) a minute into the past in the
 * server's database: what the server would see once the token's last day had passed. */
function expireIntegrationToken(id) {
  check(/^[A-Za-z0-9]{18}$/.test(id), `not a token id: ${id}`);
  const past = Date.now() - 60_000;
  // Stored ids are the 15-character form; both values are checked above, so they may be inlined.
  const sql = `UPDATE integration_tokens SET expires_at = ${past} WHERE id = '${id.slice(0, 15)}' RETURNING id`;
  const url = process.env.KEYWARD_DATABASE_URL;
  // sqlite3 waits up to 10 s for the server's writers, as the server's own connections do.
  const [program, args] = url
    ? ['psql', [url, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql]]
    : ['sqlite3', ['-cmd', '.timeout 10000', join(DATA_DIR, 'keyward.db'), sql]];
  let out;
  try {
    out = execFileSync(program, args, { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    throw new Error(`${program} failed: ${(e.stderr || e.message).trim()}`);
  }
  const changed = out.split(/\s+/).filter(Boolean).length;
  check(changed === 1, `expected to expire 1 integration token, changed ${changed}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Login history rows of USER, newest first (`keyward login-history --format json`). */
function history(user) {
  return JSON.parse(keyward(['login-history', '--user', user, '--limit', '10000', '--format', 'json']));
}

/** The error PROMISE rejects with, or undefined if it resolves. */
const rejection = (promise) =>
  promise.then(
    () => undefined,
    (e) => e,
  );

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const oneLine = (value) => String(value).replace(/\s+/g, ' ').trim();

// ---------------------------------------------------------------------------------------------
// One org per login mode, with its own users: several client programs can share a server.

function newOrg(mode) {
  const org = keyward(['org', 'create', '--name', `jsforce-${mode}-${rand()}`]);
  let clientId;
  let clientSecret;
  if (mode === 'oauth') {
    const created = keyward(['oauth', 'client', 'create', '--org', org, '--name', 'app']);
    [clientId, clientSecret] = created.split('\n'); // the client id, then the secret
  }
  return { mode, org, clientId, clientSecret };
}

/** A user with a password, and the first token mailed to them. */
async function newUser(ctx, { profile } = {}) {
  const username = `ada-${rand()}@example.test`;
  const password = `Passw0rd-${rand()}`;
  const args = ['user', 'create', '--org', ctx.org, '--username', username, '--email', username];
  args.push('--password-stdin');
  if (profile) args.push('--profile', profile);
  const id = keyward(args, `${password}\n`);
  return { username, password, id, token: await tokenMailedTo(username) };
}

/** A connection configured for the mode, not logged in yet. */
function connection(ctx) {
  if (ctx.mode === 'soap') {
    return new jsforce.Connection({ loginUrl: URL, version: API_VERSION });
  }
  return new jsforce.Connection({
    oauth2: { loginUrl: URL, clientId: ctx.clientId, clientSecret: ctx.clientSecret },
    version: API_VERSION,
  });
}

async function login(ctx, username, secret) {
  const conn = connection(ctx);
  await conn.login(username, secret);
  return conn;
}

/** Logs in with an integration token: it is the whole password, with no security token after
 * it, on SOAP as on the OAuth password grant. */
async function loginWithIntegrationToken(ctx, username, integrationToken) {
  const conn = connection(ctx);
  await conn.login(username, integrationToken);
  return conn;
}

/**
 * Expects the login to be refused with CODE, as jsforce reports it:
 *  SOAP:  Error whose message is the faultstring, `CODE: text`
 *  OAuth: Error with name = error (`invalid_grant`), message = error_description
 *         (`authentication failure`); jsforce does not expose keyward's extra `error_code`.
 */
async function expectRefused(ctx, username, secret, code) {
  let conn;
  try {
    conn = await login(ctx, username, secret);
  } catch (e) {
    if (ctx.mode === 'soap') {
      check(e.message.startsWith(`${code}:`), `expected a ${code} fault, got ${e.name}: ${e.message}`);
    } else {
      check(
        e.name === 'invalid_grant' && e.message === 'authentication failure',
        `expected invalid_grant/authentication failure, got ${e.name}: ${e.message}`,
      );
    }
    return;
  }
  throw new Error(
    `login succeeded (access token ${conn.accessToken.slice(0, 15)}...) but ${code} was expected`,
  );
}

/** Waits (up to 3 s) until CONDITION() resolves to true. A running server may answer a session
 * check from a memory up to session_cache.ttl_ms old (at most 1 s), so a change the CLI makes
 * reaches the sessions it serves within a second. */
async function eventually(condition, message) {
  const deadline = Date.now() + 3_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(message);
    await sleep(100);
  }
}

/** Runs ATTEMPT and checks it wrote exactly one login-history row for USER, with STATUS (and, if
 * given, the CREDENTIAL it names). Returns what ATTEMPT returned. */
async function expectHistory(user, status, attempt, credential = undefined) {
  const before = history(user).length;
  const result = await attempt();
  let rows = history(user);
  for (let i = 0; i < 30 && rows.length === before; i++) {
    await sleep(100); // in case the row is written after the answer
    rows = history(user);
  }
  check(
    rows.length === before + 1,
    `expected 1 new login-history row for ${user}, got ${rows.length - before}`,
  );
  check(rows[0].status === status, `login history says '${rows[0].status}', expected '${status}'`);
  if (credential !== undefined) {
    check(
      rows[0].credential === credential,
      `login history's credential is '${rows[0].credential}', expected '${credential}'`,
    );
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const MUST_USE_TOKEN = 'LOGIN_MUST_USE_SECURITY_TOKEN';
const INVALID_LOGIN = 'INVALID_LOGIN';

const scenarios = (ctx) => ({
  'password+token from an untrusted IP logs in, and the session works': async () => {
    const user = await newUser(ctx);
    let conn;
    await expectHistory(user.username, 'Success', async () => {
      conn = await login(ctx, user.username, user.password + user.token);
    });
    // What login() learnt: user and org ids, and the instance URL later calls go to.
    check(conn.userInfo.id === user.id, `login returned user id ${conn.userInfo.id}, expected ${user.id}`);
    check(conn.userInfo.organizationId === ctx.org, `login returned org id ${conn.userInfo.organizationId}`);
    check(conn.instanceUrl === URL, `instanceUrl ${conn.instanceUrl}, expected ${URL}`);
    // identity(): GET {loginUrl}/id/{orgId}/{userId}?format=json&oauth_token=<session>
    const identity = await conn.identity();
    check(identity.user_id === user.id, `identity user_id ${identity.user_id}, expected ${user.id}`);
    check(identity.organization_id === ctx.org, `identity organization_id ${identity.organization_id}`);
    check(identity.username === user.username, `identity username ${identity.username}`);
    if (ctx.mode === 'soap') {
      // A SOAP call on the session: getUserInfo on {instanceUrl}/services/Soap/u/59.0
      const info = await conn.soap.getUserInfo();
      check(info.userId === user.id, `getUserInfo userId ${info.userId}, expected ${user.id}`);
      check(info.userName === user.username, `getUserInfo userName ${info.userName}`);
    }
  },

  'password alone from an untrusted IP is refused (LOGIN_MUST_USE_SECURITY_TOKEN)': async () => {
    const user = await newUser(ctx);
    await expectHistory(user.username, 'Failed: API security token required', () =>
      expectRefused(ctx, user.username, user.password, MUST_USE_TOKEN),
    );
  },

  'a trusted IP range admits the password alone; removing it requires the token again': async () => {
    const user = await newUser(ctx);
    const range = keyward(['network', 'add', ctx.org, '127.0.0.1', '127.0.0.1', '--description', 'test']);
    try {
      await expectHistory(user.username, 'Success', () => login(ctx, user.username, user.password));
    } finally {
      keyward(['network', 'remove', ctx.org, range]);
    }
    await expectHistory(user.username, 'Failed: API security token required', () =>
      expectRefused(ctx, user.username, user.password, MUST_USE_TOKEN),
    );
  },

  'token reset: the old token is refused, the new one works': async () => {
    const user = await newUser(ctx);
    keyward(['token', 'reset', user.username]);
    const newToken = await tokenMailedTo(user.username, user.token);
    await expectHistory(user.username, 'Failed: API security token required', () =>
      expectRefused(ctx, user.username, user.password + user.token, MUST_USE_TOKEN),
    );
    await expectHistory(user.username, 'Success', () => login(ctx, user.username, user.password + newToken));
  },

  'a locked-out user is refused with INVALID_LOGIN, even with the right password+token': async () => {
    keyward(['policy', 'set', ctx.org, '--lockout-attempts', '3']);
    const user = await newUser(ctx);
    for (let i = 1; i <= 3; i++) {
      await expectHistory(user.username, 'Invalid password', () =>
        expectRefused(ctx, user.username, `Wrong-${i}-${rand()}`, INVALID_LOGIN),
      );
    }
    await expectHistory(user.username, 'Password lockout', () =>
      expectRefused(ctx, user.username, user.password + user.token, INVALID_LOGIN),
    );
  },

  'a deactivated user is refused with INVALID_LOGIN': async () => {
    const user = await newUser(ctx);
    keyward(['user', 'deactivate', user.username]);
    await expectHistory(user.username, 'User is inactive', () =>
      expectRefused(ctx, user.username, user.password + user.token, INVALID_LOGIN),
    );
  },

  'an unknown username is refused with INVALID_LOGIN': async () => {
    await expectRefused(ctx, `nobody-${rand()}@example.test`, `Passw0rd-${rand()}`, INVALID_LOGIN);
  },

  'a profile with login IP ranges refuses 127.0.0.1 (Restricted IP) with INVALID_LOGIN': async () => {
    keyward(['profile', 'create', '--org', ctx.org, '--name', 'Office Only']);
    keyward(['profile', 'login-ip', 'add', ctx.org, 'Office Only', '10.0.0.0', '10.0.0.255']);
    const user = await newUser(ctx, { profile: 'Office Only' });
    await expectHistory(user.username, 'Restricted IP', () =>
      expectRefused(ctx, user.username, user.password + user.token, INVALID_LOGIN),
    );
  },

  'logout ends the session': async () => {
    const user = await newUser(ctx);
    const conn = await login(ctx, user.username, user.password + user.token);
    // A second connection that has only the session id / access token, as a script that was handed
    // them would. It works before the logout...
    const other = new jsforce.Connection({
      instanceUrl: conn.instanceUrl,
      accessToken: conn.accessToken,
      version: API_VERSION,
    });
    const idUrl = `${conn.userInfo.url}?format=json`; // {loginUrl}/id/{orgId}/{userId}
    // request(): GET on the identity URL with `Authorization: Bearer <session>`
    const identity = await other.request(idUrl);
    check(identity.user_id === user.id, `identity user_id ${identity.user_id}, expected ${user.id}`);
    if (ctx.mode === 'soap') {
      // SOAP getUserInfo on {instanceUrl}/services/Soap/u/59.0 with the session in SessionHeader
      const info = await other.soap.getUserInfo();
      check(info.userId === user.id, `getUserInfo userId ${info.userId}, expected ${user.id}`);
    }
    // SOAP: logout() on {instanceUrl}/services/Soap/u/59.0; OAuth: POST {loginUrl}/services/oauth2/revoke
    await conn.logout();
    // ... and not after it.
    const identityError = await rejection(other.request(idUrl));
    check(identityError, 'the identity URL still answers to the logged-out session');
    check(
      identityError.name === 'ERROR_HTTP_403' && identityError.message === 'Bad_OAuth_Token',
      `the identity URL refused the session with ${identityError.name}: ${identityError.message}, expected 403 Bad_OAuth_Token`,
    );
    if (ctx.mode === 'soap') {
      const fault = await rejection(other.soap.getUserInfo());
      check(fault, 'getUserInfo still works with the logged-out session');
      check(
        fault.name === 'sf:INVALID_SESSION_ID' && fault.message.startsWith('INVALID_SESSION_ID: '),
        `getUserInfo failed with ${fault.name}: ${fault.message}, expected INVALID_SESSION_ID`,
      );
    }
  },

  // Integration tokens (issue 17). The org has no trusted range, so 127.0.0.1 is an untrusted
  // address here (the password-alone scenario shows it); a token is refused as a password is:
  // INVALID_LOGIN (OAuth: invalid_grant), with login history saying why.

  'an integration token as the password logs in; login history and usage name it': async () => {
    const user = await newUser(ctx);
    const name = `nightly-sync-${rand()}`;
    const itoken = await newIntegrationToken(user.username, name);
    const conn = await expectHistory(
      user.username,
      'Success',
      () => loginWithIntegrationToken(ctx, user.username, itoken.token),
      `Integration token: ${name}`,
    );
    const identity = await conn.identity();
    check(identity.user_id === user.id, `identity user_id ${identity.user_id}, expected ${user.id}`);
    const uses = integrationUsage(itoken.id);
    check(
      uses.length === 1 && uses[0].source_ip === '127.0.0.1' && uses[0].uses === 1,
      `keyward integration usage says ${JSON.stringify(uses)}`,
    );
  },

  'a revoked integration token is refused with INVALID_LOGIN; its session ends': async () => {
    const user = await newUser(ctx);
    const itoken = await newIntegrationToken(user.username, 'to revoke');
    const conn = await expectHistory(user.username, 'Success', () =>
      loginWithIntegrationToken(ctx, user.username, itoken.token),
    );
    keyward(['integration', 'revoke', itoken.id]);
    // What its logins created ends with it: the session it opened too.
    const idUrl = `${conn.userInfo.url}?format=json`;
    await eventually(async () => {
      const refusal = await rejection(conn.request(idUrl));
      return refusal?.name === 'ERROR_HTTP_403';
    }, 'the session the revoked token opened still works');
    await expectHistory(
      user.username,
      'Failed: integration token invalid',
      () => expectRefused(ctx, user.username, itoken.token, INVALID_LOGIN),
      'Integration token: to revoke',
    );
  },

  'an expired integration token is refused with INVALID_LOGIN': async () => {
    const user = await newUser(ctx);
    const itoken = await newIntegrationToken(user.username, 'to expire');
    expireIntegrationToken(itoken.id);
    await expectHistory(
      user.username,
      'Failed: integration token expired',
      () => expectRefused(ctx, user.username, itoken.token, INVALID_LOGIN),
      'Integration token: to expire',
    );
  },

  'after a rotation both tokens work during the default grace window': async () => {
    // The org's default grace window (24 h): the predecessor still works right after rotation.
    const user = await newUser(ctx);
    const old = await newIntegrationToken(user.username, 'rotated');
    keyward(['integration', 'rotate', old.id]);
    const successor = await integrationTokenMailedTo(user.username, old.token);
    await expectHistory(
      user.username,
      'Success',
      () => loginWithIntegrationToken(ctx, user.username, old.token),
      'Integration token: rotated (predecessor in grace)',
    );
    await expectHistory(
      user.username,
      'Success',
      () => loginWithIntegrationToken(ctx, user.username, successor),
      'Integration token: rotated',
    );
  },

  'after a rotation with no grace window the old token is refused, the new one works': async () => {
    // Runs after the default-grace scenario: it closes the org's grace window.
    keyward(['policy', 'set', ctx.org, '--integration-grace-hours', '0']);
    const user = await newUser(ctx);
    const old = await newIntegrationToken(user.username, 'rotated');
    const successorId = keyward(['integration', 'rotate', old.id]);
    check(successorId !== old.id, 'rotate printed the old token\'s id');
    const successor = await integrationTokenMailedTo(user.username, old.token);
    await expectHistory(
      user.username,
      'Failed: integration token invalid',
      () => expectRefused(ctx, user.username, old.token, INVALID_LOGIN),
      'Integration token: rotated',
    );
    await expectHistory(
      user.username,
      'Success',
      () => loginWithIntegrationToken(ctx, user.username, successor),
      'Integration token: rotated',
    );
    const uses = integrationUsage(successorId);
    check(
      uses.length === 1 && uses[0].uses === 1,
      `the successor's usage inventory says ${JSON.stringify(uses)}`,
    );
  },
});

// ---------------------------------------------------------------------------------------------

let passed = 0;
let failed = 0;
for (const mode of ['soap', 'oauth']) {
  let ctx;
  try {
    ctx = newOrg(mode);
  } catch (e) {
    console.log(`not ok - ${mode}: setup: ${oneLine(e.message)}`);
    failed++;
    continue;
  }
  for (const [name, run] of Object.entries(scenarios(ctx))) {
    try {
      await run();
      console.log(`ok - ${mode}: ${name}`);
      passed++;
    } catch (e) {
      console.log(`not ok - ${mode}: ${name}: ${oneLine(e.message ?? e)}`);
      failed++;
    }
  }
}
console.log(`1..${passed + failed}`);
console.log(`# jsforce: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
