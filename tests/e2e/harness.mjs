// Shared by the end-to-end tests: a static server for the built app and a Chromium launcher
// with WebGPU on SwiftShader (see BROWSER.md for why each flag is there).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

/** Serves MECHLAB_DIST on a free loopback port; resolves to { url, close }. */
export async function serveDist() {
  const root = process.env.MECHLAB_DIST;
  if (!root || !fs.existsSync(path.join(root, 'index.html'))) {
    throw new Error(`MECHLAB_DIST must point at the built app (got ${root}); run cargo xtask test`);
  }
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = path.join(root, urlPath);
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      file = path.join(root, 'index.html');
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

const COMMON = [
  '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WEBGPU = [
  '--enable-unsafe-webgpu', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
  '--enable-unsafe-swiftshader',
  // Playwright passes its own --enable-features; a second flag replaces it, so repeat its entries.
  '--enable-features=Vulkan,CDPScreenshotNewSurface,SkipListAccountsWithoutGaiaCookies',
];

/** Launches the system Chromium, with WebGPU unless { webgpu: false }. */
export async function launch({ webgpu = true } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlab-e2e-'));
  const args = [...COMMON, ...(webgpu ? WEBGPU : ['--disable-webgpu'])];
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1400, height: 1000 },
    acceptDownloads: true,
  });
}

/** Collects page errors so a test can assert none happened. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

/** The run's status word. */
export const status = (page) => page.textContent('#status').then((s) => s.trim());
/** How many times a chart has been drawn. */
export const updates = (page, id) => page.getAttribute(id, 'data-updates').then(Number);

/** Waits for the run's status; fails at once with the page's message if the run fails instead. */
export async function waitStatus(page, want, timeout = 120_000) {
  await page.waitForFunction(
    (w) => {
      const s = document.querySelector('#status')?.textContent.trim();
      // Fail fast with the page's message instead of waiting out the timeout.
      return s === w || (s === 'error' && w !== 'error');
    },
    want,
    { timeout },
  );
  if (want !== 'error' && (await status(page)) === 'error') {
    assert.fail(`the run failed: ${await page.textContent('#error')}`);
  }
}

/** Clicks and returns the download it starts, as { name, bytes }. */
export async function download(page, click) {
  const [d] = await Promise.all([page.waitForEvent('download'), click()]);
  const chunks = await (await d.createReadStream()).toArray();
  return { name: d.suggestedFilename(), bytes: Buffer.concat(chunks) };
}

/**
 * One served app and one browser for a test file: registers the hooks that start and stop them,
 * and returns { open(hash) → { page, errors }, newPage(), url() } (url: the served app's address).
 */
export function appSession() {
  let server;
  let ctx;
  before(async () => {
    server = await serveDist();
    ctx = await launch();
  });
  after(async () => {
    await ctx?.close();
    await server?.close();
  });
  return {
    url: () => server.url,
    newPage: () => ctx.newPage(),
    async open(hash = '') {
      const page = await ctx.newPage();
      const errors = watchErrors(page);
      await page.goto(server.url + (hash ? `#${hash}` : ''));
      await page.waitForSelector('#status');
      return { page, errors };
    },
  };
}

/** Types into a control and leaves it, as a user does, so the page parses the new value. */
export async function setField(page, selector, value) {
  await page.fill(selector, value);
  await page.press(selector, 'Tab');
}

/**
 * Each bad link shows its message (matching the case's pattern), the control `field` is back at
 * its default `value`, Run is enabled and the page threw nothing.
 */
export async function checkBadLinks(open, cases, field, value) {
  for (const [hash, want] of cases) {
    const { page, errors } = await open(hash);
    await page.waitForSelector('#error', { state: 'visible' });
    assert.match(await page.textContent('#error'), want, hash);
    assert.equal(await page.inputValue(field), value, `${hash}: defaults restored`);
    assert.equal(await page.isEnabled('#run'), true, `${hash}: the page still works`);
    assert.deepEqual(errors, []);
    await page.close();
  }
}

/**
 * Runs a config that diverges, expects the step named, then sets `fixes` ([selector, value]
 * pairs), runs again to the end, and expects no page errors throughout.
 */
export async function checkDivergenceRecovers(page, errors, fixes) {
  await page.click('#run');
  await waitStatus(page, 'error', 60_000);
  assert.match(await page.textContent('#error'), /diverged at step \d+/);
  for (const [selector, value] of fixes) {
    await setField(page, selector, value);
  }
  await page.click('#run');
  await waitStatus(page, 'done');
  assert.deepEqual(errors, []);
  await page.close();
}

/**
 * The entries of a zip archive the page wrote (stored, not deflated: what the app writes), as
 * { name: Buffer }, read from the local file headers.
 */
export function unzipStored(buf) {
  const out = {};
  let at = 0;
  while (buf.readUInt32LE(at) === 0x04034b50) {
    const method = buf.readUInt16LE(at + 8);
    const size = buf.readUInt32LE(at + 18);
    const nameLen = buf.readUInt16LE(at + 26);
    const extraLen = buf.readUInt16LE(at + 28);
    const name = buf.toString('utf8', at + 30, at + 30 + nameLen);
    assert.equal(method, 0, `${name} is stored`);
    const start = at + 30 + nameLen + extraLen;
    out[name] = buf.subarray(start, start + size);
    at = start + size;
  }
  return out;
}

/**
 * Starts a run the test knows is long: the page measures it, holds it and asks; this says to
 * go on, and resolves once it trains again.
 */
export async function runLong(page) {
  await page.click('#run');
  await page.waitForSelector('#long-run', { state: 'visible', timeout: 60_000 });
  await page.click('#long-run-continue');
  await page.waitForSelector('#long-run', { state: 'hidden' });
  await waitStatus(page, 'running');
}
