// The Sekisho console in a real browser: Debian's chromium, driven by playwright-core, against the real
// `sekisho` binary on loopback. One person's session, step by step: log in, create a field, register a
// device and read its secret (shown once), disable it (htmx swaps the row), switch to Japanese, look at
// the history, turn on a second factor and stop the device with a code, log out. The device API is called
// alongside to check that what the page says is true.
//
// Run with `bash tests/console/run.sh` (installs what it needs), or `node --test console.spec.mjs` with
// SEKISHO_BIN pointing at a built binary. Screenshots go to $SEKISHO_SCREENSHOTS or a temp directory.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.SEKISHO_BIN || path.join(ROOT, 'target/debug/sekisho');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'correct-horse-battery-staple';
const STEP_TIMEOUT = 60_000;

const work = mkdtempSync(path.join(tmpdir(), 'sekisho-console-'));
const dataDir = path.join(work, 'data');
const profileDir = path.join(work, 'chromium-profile');
const shots = process.env.SEKISHO_SCREENSHOTS || mkdtempSync(path.join(tmpdir(), 'sekisho-console-shots-'));
mkdirSync(shots, { recursive: true });

let gateway; // the sekisho process
let admin; // host:port of the admin listener
let device; // host:port of the device listener
let context; // the browser
let page;
const problems = []; // console errors and page errors (a CSP violation shows up here)

// What the steps learn and pass on.
const seen = {};

/// Starts `sekisho serve` on ephemeral loopback ports; resolves with the two addresses it prints.
function startGateway() {
  execFileSync(BIN, ['init', '--data-dir', dataDir], {
    env: { ...process.env, SEKISHO_ADMIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  gateway = spawn(
    BIN,
    ['serve', '--data-dir', dataDir, '--device-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SEKISHO_LOG: 'warn' } },
  );
  gateway.stderr.on('data', (d) => process.stderr.write(`[sekisho] ${d}`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start within 30 s')), 30_000);
    gateway.on('exit', (code) => reject(new Error(`the gateway exited early (${code})`)));
    let dev;
    createInterface({ input: gateway.stdout }).on('line', (line) => {
      const d = line.match(/device API : https:\/\/([^/]+)\//);
      if (d) dev = d[1];
      const a = line.match(/admin API {2}: https:\/\/([^/]+)\//);
      if (a) {
        clearTimeout(timer);
        resolve({ admin: a[1], device: dev });
      }
    });
  });
}

/// A JSON POST to the device API, trusting the gateway's own CA.
function devicePost(pathname, body) {
  const ca = readFileSync(path.join(dataDir, 'tls/ca.crt'));
  const [host, port] = device.split(':');
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path: pathname, method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const token = () =>
  devicePost('/v1/auth/token', { auth_id: seen.authId, auth_secret: seen.secret, unique_id: 'door-001' });

/// RFC 6238: the 6-digit code of a 30-second step for a base32 key, as an authenticator app computes it.
function totp(base32, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = [];
  let acc = 0;
  let bits = 0;
  for (const c of base32) {
    acc = ((acc << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >>> bits) & 0xff);
    }
  }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  const n = (h.readUInt32BE(h[19] & 0x0f) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

/// A code for a step the gateway has not accepted yet: the current step or the next one.
async function freshCode() {
  for (;;) {
    const now = Math.floor(Date.now() / 30_000);
    const step = seen.lastStep === undefined ? now : Math.max(seen.lastStep + 1, now);
    if (step <= now + 1) {
      seen.lastStep = step;
      return totp(seen.totpKey, step);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/// Six digits that are no code of the steps around now.
function wrongCode() {
  const now = Math.floor(Date.now() / 30_000);
  const valid = [-2, -1, 0, 1, 2].map((d) => totp(seen.totpKey, now + d));
  return ['000000', '111111', '222222', '333333', '444444', '555555'].find((c) => !valid.includes(c));
}

async function shot(name) {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

before(async () => {
  ({ admin, device } = await startGateway());
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    ignoreHTTPSErrors: true, // the gateway's self-signed CA
    locale: 'en-US',
    viewport: { width: 1280, height: 860 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    // The refused login answers 401 on purpose; Chromium reports every non-2xx document as an error.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Nothing may leave loopback: the console is self-contained.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.hostname !== '127.0.0.1') problems.push(`external request: ${r.url()}`);
  });
});

after(async () => {
  await context?.close().catch(() => {});
  if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
  console.log(`# screenshots kept in ${shots}`);
});

test('logs in through the form', { timeout: STEP_TIMEOUT }, async () => {
  await page.goto(`https://${admin}/`);
  assert.match(page.url(), /\/console\/login$/, 'sent to the login page');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'wrong password');
  await page.click('#login-form button');
  await page.waitForSelector('.alert');
  assert.match(await page.textContent('.alert'), /Wrong user name or password/);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(/\/console$/), page.click('#login-form button')]);
  assert.equal(await page.textContent('h1'), 'System status');
  await shot('0-dashboard');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'sekisho_session');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, 'Strict');
  // htmx loaded (no CDN, no inline script) and configured without eval.
  assert.equal(await page.evaluate(() => typeof window.htmx), 'object');
  assert.equal(await page.evaluate(() => window.htmx.config.allowEval), false);
});

test('creates a field', { timeout: STEP_TIMEOUT }, async () => {
  await Promise.all([page.waitForURL(/\/console\/fields$/), page.click('nav.main-nav >> text=Fields')]);
  await page.fill('#new-field-form input[name=name]', 'Osaka plant');
  await Promise.all([page.waitForURL(/\/console\/fields\/f_/), page.click('#new-field-form button')]);
  assert.equal(await page.textContent('h1'), 'Osaka plant');
  seen.fieldUrl = page.url();
  seen.authId = (await page.textContent('#field-auth-id')).trim();
  assert.match(seen.authId, /^aid_/);
});

test('registers a device and shows its secret once', { timeout: STEP_TIMEOUT }, async () => {
  await page.fill('#register-form input[name=unique_id]', 'door-001');
  await page.fill('#register-form input[name=name]', 'Door sensor');
  await page.fill('#register-form input[name=imsi]', '440101234567890');
  await page.check('#register-form input[name=critical]');
  await Promise.all([page.waitForLoadState('load'), page.click('#register-form button')]);
  await page.waitForSelector('#new-secret');
  seen.secret = (await page.textContent('#new-secret')).trim();
  assert.ok(seen.secret.length >= 43, `a long secret: ${seen.secret}`);
  assert.equal((await page.textContent('#new-auth-id')).trim(), seen.authId, 'shown with the field auth ID');
  const row = page.locator('tr[data-unique-id="door-001"]');
  assert.equal(await row.locator('[data-status]').getAttribute('data-status'), 'active');
  assert.match(await row.textContent(), /440101234567890/);
  await shot('1-registered');
  // The secret on the page is the device's: it gets a token.
  const r = await token();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  // ... and it is not shown again.
  await page.goto(seen.fieldUrl);
  assert.equal(await page.locator('#new-secret').count(), 0);
  assert.ok(!(await page.content()).includes(seen.secret));
});

test('disables the device in place (htmx)', { timeout: STEP_TIMEOUT }, async () => {
  const row = page.locator('tr[data-unique-id="door-001"]');
  await page.evaluate(() => (window.__samePage = true)); // survives an htmx swap, not a navigation
  await row.locator('button[data-action="disable"]').click();
  await page.waitForSelector('tr[data-unique-id="door-001"] [data-status="disabled"]');
  assert.equal(await page.evaluate(() => window.__samePage), true, 'swapped, not reloaded');
  assert.match(await row.locator('[data-status]').textContent(), /Disabled/);
  assert.equal(await row.locator('button[data-action="enable"]').count(), 1);
  const r = await token();
  assert.equal(r.status, 403);
  assert.equal(r.body.error, 'device_disabled');
  await shot('2-disabled');
});

test('switches to Japanese', { timeout: STEP_TIMEOUT }, async () => {
  await Promise.all([page.waitForLoadState('load'), page.click('form.lang button[value=ja]')]);
  await page.waitForSelector('html[lang=ja]');
  assert.equal(page.url(), seen.fieldUrl, 'back on the same page');
  const row = page.locator('tr[data-unique-id="door-001"]');
  assert.equal((await row.locator('[data-status]').textContent()).trim(), '無効');
  assert.equal((await row.locator('button[data-action="enable"]').textContent()).trim(), '有効化');
  assert.equal((await page.textContent('#logout')).trim(), 'ログアウト');
  assert.match(await page.textContent('nav.main-nav'), /フィールド/);
  await shot('3-japanese');
});

test('shows the history', { timeout: STEP_TIMEOUT }, async () => {
  await Promise.all([page.waitForURL(/\/console\/history/), page.click('nav.main-nav >> text=履歴')]);
  await Promise.all([page.waitForURL(/kind=auth/), page.click('nav.tabs >> text=認証')]);
  const rows = page.locator('table#auth tbody tr');
  assert.ok((await rows.count()) >= 2, 'a success and a refusal');
  assert.ok((await page.locator('table#auth .badge.success').count()) >= 1);
  await page.selectOption('#history-filter select[name=outcome]', 'failure');
  await Promise.all([page.waitForURL(/outcome=failure/), page.click('#history-filter button')]);
  assert.equal(await page.locator('table#auth .badge.success').count(), 0);
  assert.ok((await page.locator('table#auth .badge.failure').count()) >= 1);
  await shot('4-history');
});

test('turns on a second factor and stops the device with a code', { timeout: STEP_TIMEOUT }, async () => {
  await Promise.all([page.waitForURL(/\/console\/security$/), page.click('nav.main-nav >> text=セキュリティ')]);
  assert.equal(await page.getAttribute('#mfa-status', 'data-mfa'), 'off');
  await Promise.all([page.waitForLoadState('load'), page.click('#mfa-enrol-form button')]);
  seen.totpKey = (await page.textContent('#mfa-secret')).trim();
  assert.match(await page.textContent('#mfa-uri'), /^otpauth:\/\/totp\/Sekisho:admin\?secret=/);
  await page.fill('#mfa-confirm-form input[name=code]', await freshCode());
  await Promise.all([page.waitForLoadState('load'), page.click('#mfa-confirm-form button')]);
  assert.equal(await page.getAttribute('#mfa-status', 'data-mfa'), 'on');
  await shot('5-second-factor');
  // Enable is an undo: no code. Disable then needs one, typed beside the button.
  await page.goto(seen.fieldUrl);
  const row = page.locator('tr[data-unique-id="door-001"]');
  await row.locator('button[data-action="enable"]').click();
  await page.waitForSelector('tr[data-unique-id="door-001"] [data-status="active"]');
  await row.locator('input[name=totp]').first().fill(wrongCode());
  await row.locator('button[data-action="disable"]').click();
  await page.waitForSelector('tr[data-unique-id="door-001"] .note');
  assert.equal(await row.locator('[data-status]').getAttribute('data-status'), 'active', 'a wrong code stops nothing');
  assert.equal((await token()).status, 200);
  await row.locator('input[name=totp]').first().fill(await freshCode());
  await row.locator('button[data-action="disable"]').click();
  await page.waitForSelector('tr[data-unique-id="door-001"] [data-status="disabled"]');
  const r = await token();
  assert.equal(r.status, 403);
  assert.equal(r.body.error, 'device_disabled');
  await shot('6-stopped-with-a-code');
});

test('logs out', { timeout: STEP_TIMEOUT }, async () => {
  await Promise.all([page.waitForURL(/\/console\/login$/), page.click('#logout')]);
  assert.match(await page.textContent('h1'), /ログイン/);
  await page.goto(`https://${admin}/console`);
  assert.match(page.url(), /\/console\/login$/, 'the session is over');
  assert.ok(!(await context.cookies()).some((c) => c.name === 'sekisho_session'));
});

test('the browser saw no errors (CSP, scripts) and nothing left loopback', () => {
  assert.deepEqual(problems, []);
});
