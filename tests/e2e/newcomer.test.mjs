// The labs as a newcomer meets them (issue 13), in headless Chromium on WebGPU (SwiftShader):
// links keep what is valid and say what they replaced, charts say what they show and which way
// their colours run, exports write numbers as they were set, and nothing offers an export of
// nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appSession, waitStatus, download, setField, runLong, status } from './harness.mjs';

const session = appSession();
const open = session.open;

// A Superposition run of a second or two on SwiftShader.
const TOY = 'v=1&nf=5&nh=2&act=relu&imp=0.9&p=1,0.1,0.01&bs=64&steps=60&lr=0.01&seed=3';
// An SAE run of a few seconds: TopK, so the loss is the reconstruction alone.
const SAE =
  'v=1&lab=sae&a.kind=topk&a.k=4&s.kind=ground_truth&s.d=16&s.n_features=40&s.probability=0.05' +
  '&d_sae=64&batch_size=128&steps=80&learning_rate=0.001&lr_warmup_steps=10&seed=1';

/** WCAG contrast ratio of two `rgb(r, g, b)` colours. */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test('one bad field keeps the rest of the link, names what replaced it, and the address agrees', async () => {
  const { page, errors } = await open('v=1&nf=7&nh=3&lr=-0.01&seed=5');
  await page.waitForSelector('#error', { state: 'visible' });
  assert.equal(await page.inputValue('#f-nf'), '7');
  assert.equal(await page.inputValue('#f-nh'), '3');
  assert.equal(await page.inputValue('#f-seed'), '5');
  assert.equal(await page.inputValue('#f-lr'), '0.001');
  const message = await page.textContent('#error');
  assert.match(message, /`lr=-0\.01` was replaced by `0\.001`/);
  assert.match(message, /learning_rate/);
  assert.doesNotMatch(message, /nf=|nh=|seed=/, 'only the bad field is named');
  // The address holds what the page shows, and Copy link gives the same address.
  await page.waitForFunction(() => location.hash.includes('lr=0.001') && location.hash.includes('nf=7'));
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: session.url() });
  await page.click('#copy-link');
  await page.waitForFunction(() => document.querySelector('#copy-status').textContent.includes('copied'));
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), page.url());
  // Two bad fields in another lab: both named, the rest kept.
  await page.goto(session.url() + '#v=1&lab=sae&d_sae=96&a.k=x&seed=9&zz=1');
  await page.waitForSelector('#error', { state: 'visible' });
  assert.equal(await page.inputValue('#f-d_sae'), '96');
  assert.equal(await page.inputValue('#f-seed'), '9');
  const sae = await page.textContent('#error');
  assert.match(sae, /2 fields/);
  assert.match(sae, /`a\.k=x` was replaced by `\d+`/);
  assert.match(sae, /`zz=1` was replaced by the default/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a link naming no lab that exists says the value is wrong, not the field', async () => {
  const { page } = await open('v=1&lab=nonsense');
  await page.waitForSelector('#error', { state: 'visible' });
  const message = await page.textContent('#error');
  assert.match(message, /`lab=nonsense`: there is no such lab/);
  assert.doesNotMatch(message, /unknown field/);
  await page.close();
});

test('before a run no chart offers an export; afterwards each says what it shows', async () => {
  const { page } = await open(TOY);
  for (const id of ['#loss-chart', '#directions-chart']) {
    assert.equal(await page.isEnabled(`${id}-png`), false, `${id}: no PNG of an empty chart`);
    assert.equal(await page.getAttribute(id, 'role'), 'img');
    assert.ok((await page.getAttribute(id, 'aria-label')).length > 10, `${id} has a text alternative`);
  }
  await page.click('#run');
  await waitStatus(page, 'done');
  await page.waitForFunction(() => /Latest, at step 60: .*\d/.test(document.querySelector('#loss-chart').getAttribute('aria-label')));
  assert.equal(await page.isEnabled('#loss-chart-png'), true);
  await page.close();
});

test('the feature directions colour bar runs the way the arrows do: dark is most important', async () => {
  const { page } = await open(TOY);
  await page.click('#run');
  await waitStatus(page, 'done');
  await page.waitForFunction(() => Number(document.querySelector('#directions-chart').dataset.updates) >= 2);
  // The bar spans x 60..160 at y 8..18 (CSS pixels); its end labels say least, then most.
  const [left, right] = await page.evaluate(() => {
    const c = document.querySelector('#directions-chart');
    const k = c.width / c.clientWidth;
    const ctx = c.getContext('2d');
    const at = (x) => Array.from(ctx.getImageData(Math.round(x * k), Math.round(13 * k), 1, 1).data);
    return [at(64), at(156)];
  });
  const lum = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;
  assert.ok(lum(left) > lum(right) + 60, `least (left ${left}) is light, most (right ${right}) is dark`);
  await page.close();
});

test('the focus ring stands out from the page (3:1)', async () => {
  const { page } = await open(TOY);
  await page.focus('#f-nf');
  const [ring, bg] = await page.evaluate(() => [
    getComputedStyle(document.querySelector('#f-nf')).outlineColor,
    getComputedStyle(document.body).backgroundColor,
  ]);
  const background = bg === 'rgba(0, 0, 0, 0)' ? 'rgb(255, 255, 255)' : bg;
  assert.ok(contrast(ring, background) >= 3, `focus ring ${ring} on ${background}`);
  await page.close();
});

test('SAE exports: numbers as set, an L0 file of its own, a visible total, one style per column', async () => {
  const { page } = await open(SAE);
  assert.equal(await page.isEnabled('#sae-loss-chart-png'), false);
  await page.click('#run');
  await waitStatus(page, 'done');
  const run = await download(page, () => page.click('#export-run'));
  const text = run.bytes.toString('utf8');
  assert.match(text, /"learning_rate": 0\.001,/);
  assert.doesNotMatch(text, /0\.00100000004/);
  const loss = await download(page, () => page.click('#sae-loss-chart-data'));
  const l0 = await download(page, () => page.click('#sae-l0-chart-data'));
  assert.notEqual(l0.bytes.toString('utf8'), loss.bytes.toString('utf8'));
  assert.equal(l0.bytes.toString('utf8').split('\n')[0], 'step,l0');
  assert.doesNotMatch(loss.bytes.toString('utf8').split('\n')[0], /l0/);
  // TopK has no sparsity term: the total equals the reconstruction and is drawn dashed over it.
  assert.match(await page.getAttribute('#sae-loss-chart', 'aria-label'), /total, dashed/);
  for (const column of [2, 3]) {
    const cells = await page.locator(`#latent-table tbody tr td:nth-child(${column})`).allTextContents();
    const decimals = new Set(cells.map((c) => (c.split('.')[1] ?? '').length));
    assert.equal(decimals.size, 1, `column ${column}: ${cells.slice(0, 8)}`);
    assert.ok(cells.every((c) => !/e/.test(c)), `column ${column} has no exponents`);
  }
  await page.close();
});

test('switching labs loses nothing: controls, a run in progress and charts come back as left', async () => {
  const long = TOY.replace('steps=60', 'steps=1000000');
  const { page, errors } = await open(long);
  await setField(page, '#f-seed', '7');
  await runLong(page);
  await page.waitForFunction(() => Number(document.querySelector('#step').textContent.replace(/\D/g, '')) > 0);
  const toyLink = await page.evaluate(() => location.hash);
  // To the SAE lab, change a field there, and back.
  await page.click('#lab-sae');
  await page.waitForSelector('#f-d_sae');
  assert.equal(await page.$('#f-nf'), null, 'only the lab shown is in the document');
  await setField(page, '#f-d_sae', '96');
  await page.waitForFunction(() => location.hash.includes('d_sae=96'));
  await page.click('#lab-superposition');
  await page.waitForSelector('#f-nf');
  assert.equal(await page.evaluate(() => location.hash), toyLink, 'the tab brings back the lab as left');
  assert.equal(await page.inputValue('#f-seed'), '7');
  assert.equal(await status(page), 'running', 'the run went on while away');
  assert.ok(Number((await page.textContent('#step')).replace(/\D/g, '')) > 0);
  await page.waitForFunction(() => Number(document.querySelector('#loss-chart').dataset.updates) >= 2);
  // The SAE tab now links to the SAE experiment as it was left, and opens it that way.
  assert.match(await page.getAttribute('#lab-sae', 'href'), /d_sae=96/);
  await page.click('#lab-sae');
  await page.waitForSelector('#f-d_sae');
  assert.equal(await page.inputValue('#f-d_sae'), '96');
  await page.click('#lab-superposition');
  await page.waitForSelector('#f-nf');
  await page.click('#reset');
  await waitStatus(page, 'idle');
  assert.deepEqual(errors, []);
  await page.close();
});

test('hovering a chart reads out the value under the cursor', async () => {
  const { page } = await open(TOY);
  await page.click('#run');
  await waitStatus(page, 'done');
  await page.waitForFunction(() => Number(document.querySelector('#loss-chart').dataset.updates) >= 2);
  assert.equal(await page.isVisible('#loss-chart-readout'), false);
  const box = await page.locator('#loss-chart').boundingBox();
  await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
  await page.waitForSelector('#loss-chart-readout', { state: 'visible' });
  assert.match(await page.textContent('#loss-chart-readout'), /^p=[\d.]+: loss [\d.e-]+ at step \d+$/);
  await page.mouse.move(box.x - 50, box.y - 50);
  await page.waitForSelector('#loss-chart-readout', { state: 'hidden' });
  // Heatmaps and arrows read out their cells too.
  for (const [id, want] of [['#wtw-chart', /WᵀW\[\d, \d\] = |b\[\d\] = /], ['#directions-chart', /feature \d at \(/], ['#norms-chart', /‖W_\d‖ = /]]) {
    await page.locator(id).scrollIntoViewIfNeeded();
    const b = await page.locator(id).boundingBox();
    await page.mouse.move(b.x + 60, b.y + b.height * 0.6);
    await page.waitForSelector(`${id}-readout`, { state: 'visible' });
    assert.match(await page.textContent(`${id}-readout`), want, id);
  }
  await page.close();
});

test('at 390 px wide nothing scrolls sideways, and each lab explains itself', async () => {
  const { page } = await open(TOY);
  await page.setViewportSize({ width: 390, height: 800 });
  await page.click('#run');
  await waitStatus(page, 'done');
  for (const lab of ['#lab-superposition', '#lab-sae', '#lab-lm']) {
    await page.click(lab);
    await page.waitForSelector('details.about');
    await page.waitForTimeout(300);
    const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(scroll <= client, `${lab}: the page is ${scroll} px wide in a ${client} px window`);
    await page.click('details.about summary');
    assert.match(await page.textContent('details.about'), /What you are looking at/);
    assert.ok((await page.locator('details.about a[href^="https://"]').count()) >= 1, `${lab} links its paper`);
  }
  await page.close();
});

test('the phase diagram colours a cell only once its instance has converged, and counts them', async () => {
  const grid = 'v=1&nf=2&nh=1&act=relu&imp=1&p=log:1:0.05:3&ri=log:0.3:3:3&bs=256&steps=3000&lr=0.01&seed=1';
  const { page } = await open(grid);
  assert.match(await page.getAttribute('#phase-chart', 'aria-label'), /0 of 9 instances have converged/);
  await page.click('#run');
  await waitStatus(page, 'done');
  await page.waitForFunction(() => /[1-9] of 9 instances have converged/.test(document.querySelector('#phase-chart').getAttribute('aria-label')));
  await page.close();
});

/** Waits for the page's estimate of what Run would take, and returns its text. */
async function measured(page, not = null) {
  await page.waitForFunction(
    (not) => {
      const t = document.querySelector('#estimate')?.textContent ?? '';
      return /measured over \d+ steps?/.test(t) && t !== not;
    },
    not,
    { timeout: 90_000 },
  );
  return (await page.textContent('#estimate')).trim();
}

/** Seconds in a duration as the page writes it ("1 h 5 min", "3 min 20 s", "12 s"). */
function seconds(text) {
  const unit = { h: 3600, min: 60, s: 1 };
  let total = 0;
  for (const [, n, u] of text.matchAll(/(\d+(?:\.\d+)?) (h|min|s)\b/g)) total += Number(n) * unit[u];
  return total;
}

test('every run is measured on this device before Run, and a long one asks before it starts', async () => {
  const LONG = 'v=1&nf=200&nh=20&act=relu&imp=1&p=log:1:0.01:16&bs=1024&steps=10000&lr=0.001&seed=0';
  const { page, errors } = await open(LONG);
  const est = await measured(page);
  assert.match(est, /^This run will take about .*(min|h).* on this device \(measured over \d+ steps?\)\. That is over five minutes: Run asks before it starts\.$/);
  assert.match(await page.getAttribute('#estimate', 'class'), /warn/);
  assert.equal(await page.textContent('#step'), '0', 'measuring trains nothing the page shows');
  await page.click('#run');
  await page.waitForSelector('#long-run', { state: 'visible' });
  assert.match(await page.textContent('#long-run'), /will take about .* \(measured over \d+ steps?\)\. Start it\?/);
  assert.equal(await status(page), 'idle', 'held before it starts');
  await page.waitForTimeout(500);
  assert.equal(await page.textContent('#step'), '0');
  await page.click('#long-run-stop');
  await page.waitForSelector('#long-run', { state: 'hidden' });
  assert.equal(await status(page), 'idle');

  // A short run is measured too, is not marked, and starts at once; a longer one of the same
  // model is measured again and takes proportionally longer.
  await page.goto(session.url() + '#' + TOY);
  const short = await measured(page, est);
  assert.match(short, /^This run will take (about \d+ s|under a second) on this device/);
  assert.doesNotMatch(await page.getAttribute('#estimate', 'class'), /warn/);
  await setField(page, '#f-steps', '10000');
  const some = await measured(page, short);
  await setField(page, '#f-steps', '100000');
  const more = await measured(page, some);
  const ratio = seconds(more) / seconds(some);
  assert.ok(ratio > 4 && ratio < 25, `10,000 steps: ${some}; 100,000: ${more}`);
  await setField(page, '#f-steps', '60');
  await measured(page, more);
  await page.click('#run');
  await waitStatus(page, 'done');
  assert.equal(await page.isVisible('#long-run'), false);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a long run started before its estimate came is measured, held and explained before it goes on', async () => {
  const { page, errors } = await open('v=1&nf=200&nh=20&act=relu&imp=1&p=log:1:0.01:16&bs=1024&steps=10000&lr=0.001&seed=0');
  await page.click('#run');
  await page.waitForSelector('#long-run', { state: 'visible', timeout: 60_000 });
  assert.match(await page.textContent('#long-run'), /will take about .*(min|h).* on this device \(measured over its first \d+ steps\)/);
  await waitStatus(page, 'paused');
  const step = await page.textContent('#step');
  await page.waitForTimeout(1000);
  assert.equal(await page.textContent('#step'), step, 'nothing trains while the page asks');
  await page.click('#long-run-stop');
  await waitStatus(page, 'idle');
  // A short run is not asked about.
  await page.goto(session.url() + '#' + TOY);
  await page.click('#run');
  await waitStatus(page, 'done');
  assert.equal(await page.isVisible('#long-run'), false);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the Superposition page has the engine choice too, and the CPU reference trains when chosen', async () => {
  const { page, errors } = await open(TOY);
  assert.equal(await page.inputValue('#toy-engine'), 'auto');
  await page.selectOption('#toy-engine', 'cpu');
  await page.click('#run');
  await waitStatus(page, 'done');
  const run = await download(page, () => page.click('#export-run'));
  assert.equal(JSON.parse(run.bytes.toString('utf8')).adapter, 'CPU reference');
  await page.selectOption('#toy-engine', 'webgpu');
  await page.click('#run');
  await waitStatus(page, 'done');
  const again = await download(page, () => page.click('#export-run'));
  assert.match(JSON.parse(again.bytes.toString('utf8')).adapter, /SwiftShader|swiftshader/i);
  assert.deepEqual(errors, []);
  await page.close();
});
