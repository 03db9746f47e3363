// The Superposition page as a user drives it, in headless Chromium on WebGPU (SwiftShader):
// it loads, controls work, a run trains and the charts update, a shared link restores the
// same state, and bad input gets a clear message while the page keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appSession, launch, watchErrors, status, updates, waitStatus, setField, checkBadLinks, checkDivergenceRecovers,
  runLong,
} from './harness.mjs';

const session = appSession();
const open = session.open;

// A config small enough to train in seconds on SwiftShader.
const TINY = 'v=1&nf=5&nh=2&act=relu&imp=0.9&p=1,0.1,0.01&bs=64&steps=400&lr=0.01&seed=3';

test('the page loads with the intro preset and a WebGPU backend', async () => {
  const { page, errors } = await open();
  await page.waitForFunction(() => /WebGPU|CPU/.test(document.querySelector('#backend')?.textContent ?? ''));
  assert.match(await page.textContent('#backend'), /WebGPU/);
  assert.equal(await status(page), 'idle');
  assert.equal(await page.inputValue('#f-nf'), '5');
  assert.equal(await page.inputValue('#f-nh'), '2');
  assert.match(new URL(page.url()).hash, /v=1/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a run trains to the end and the charts update', async () => {
  const { page, errors } = await open(TINY);
  await page.click('#run');
  await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.dataset.updates) >= 2, null, {
    timeout: 60_000,
  });
  await waitStatus(page, 'done');
  assert.match(await page.textContent('#step'), /400/);
  for (const id of ['#loss-chart', '#wtw-chart', '#norms-chart', '#directions-chart']) {
    assert.ok((await updates(page, id)) >= 1, `${id} was drawn`);
  }
  assert.equal(await page.isVisible('#error'), false);
  assert.deepEqual(errors, []);
  await page.close();
});

test('pause stops training and resume continues it', async () => {
  const { page } = await open(TINY.replace('steps=400', 'steps=1000000'));
  await runLong(page);
  await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.dataset.updates) >= 2, null, {
    timeout: 60_000,
  });
  await page.click('#pause');
  await waitStatus(page, 'paused');
  const step = await page.textContent('#step');
  await page.waitForTimeout(1500);
  assert.equal(await page.textContent('#step'), step, 'no steps while paused');
  await page.click('#pause');
  await waitStatus(page, 'running');
  await page.waitForFunction((s) => document.querySelector('#step').textContent !== s, step, { timeout: 60_000 });
  await page.click('#reset');
  await waitStatus(page, 'idle');
  await page.close();
});

test('training runs in a worker and the page stays responsive while it trains', async () => {
  const { page, errors } = await open(TINY.replace('steps=400', 'steps=1000000'));
  // The page says where training runs once the worker has reported its backend.
  await page.waitForFunction(() => document.body.dataset.engineThread === 'worker', null, { timeout: 60_000 });
  assert.match(await page.textContent('#backend'), /WebGPU/);
  assert.ok(
    page.workers().some((w) => /mechlab-worker-loader\.js$/.test(w.url())),
    `a dedicated worker runs the trainer (workers: ${page.workers().map((w) => w.url())})`,
  );
  await runLong(page);
  await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.dataset.updates) >= 3, null, {
    timeout: 60_000,
  });
  // For about a second of training, the page's event loop never stalls: a setTimeout(0) chain
  // sees no gap over 200 ms, while steps keep arriving and the charts keep redrawing.
  const probe = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const step = () => Number(document.querySelector('#step').textContent);
        const draws = () => Number(document.querySelector('#loss-chart').dataset.updates);
        const start = { step: step(), draws: draws() };
        const t0 = performance.now();
        let last = t0;
        let worst = 0;
        let ticks = 0;
        const tick = () => {
          const now = performance.now();
          worst = Math.max(worst, now - last);
          last = now;
          ticks += 1;
          if (now - t0 < 1000) {
            setTimeout(tick, 0);
          } else {
            resolve({ worst, ticks, steps: step() - start.step, draws: draws() - start.draws });
          }
        };
        setTimeout(tick, 0);
      }),
  );
  assert.equal(await status(page), 'running', 'still training after the measurement');
  assert.ok(probe.steps > 0 && probe.draws > 0, `training went on while measured: ${JSON.stringify(probe)}`);
  assert.ok(probe.worst < 200, `the page's event loop stalled: ${JSON.stringify(probe)}`);
  // Pause takes effect within a couple of seconds, and then nothing trains.
  await page.click('#pause');
  await waitStatus(page, 'paused', 2_000);
  const step = await page.textContent('#step');
  await page.waitForTimeout(500);
  assert.equal(await page.textContent('#step'), step, 'no steps while paused');
  await page.click('#reset');
  await waitStatus(page, 'idle');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a training worker that cannot start is reported instead of hanging', async () => {
  const page = await session.newPage();
  const errors = watchErrors(page);
  await page.route('**/mechlab-worker*', (route) => route.abort());
  await page.goto(session.url() + '#' + TINY);
  await page.waitForSelector('#error', { state: 'visible', timeout: 30_000 });
  assert.match(await page.textContent('#error'), /training worker did not start/);
  assert.match(await page.textContent('#backend'), /unavailable/);
  assert.equal(await page.getAttribute('body', 'data-engine-thread'), null);
  await page.click('#run');
  await waitStatus(page, 'error', 10_000);
  assert.match(await page.textContent('#error'), /training worker did not start/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a shared link restores the same controls, and control changes update the link', async () => {
  const link = 'v=1&nf=7&nh=3&act=linear&imp=0.8&p=log:1:0.01:4&bs=128&steps=900&lr=0.005&seed=42';
  const { page } = await open(link);
  assert.equal(await page.inputValue('#f-nf'), '7');
  assert.equal(await page.inputValue('#f-nh'), '3');
  assert.equal(await page.inputValue('#f-act'), 'linear');
  assert.equal(await page.inputValue('#f-p'), 'log:1:0.01:4');
  assert.equal(await page.inputValue('#f-lr'), '0.005');
  assert.equal(await page.inputValue('#f-seed'), '42');
  await setField(page, '#f-seed', '43');
  await page.waitForFunction(() => location.hash.includes('seed=43'));
  const shared = page.url();
  const other = await session.newPage();
  await other.goto(shared);
  await other.waitForSelector('#status');
  for (const id of ['#f-nf', '#f-nh', '#f-p', '#f-lr', '#f-bs', '#f-steps']) {
    assert.equal(await other.inputValue(id), await page.inputValue(id), id);
  }
  assert.equal(await other.inputValue('#f-seed'), '43');
  await other.close();
  await page.close();
});

test('bad links show a clear message and fall back to defaults', async () => {
  await checkBadLinks(
    open,
    [
      ['garbage', /bad link/i],
      ['v=99&nf=5', /newer mechlab/],
      ['v=1&nf=abc', /nf=abc/],
      ['v=1&nf=100000000', /n_features/],
    ],
    '#f-nf',
    '5',
  );
});

test('invalid controls are named and block the run until fixed', async () => {
  const { page } = await open(TINY);
  await setField(page, '#f-lr', '-1');
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match(await page.textContent('#error'), /learning_rate/);
  assert.equal(await page.isEnabled('#run'), false);
  await setField(page, '#f-lr', '0.01');
  await page.waitForFunction(() => !document.querySelector('#run').disabled);
  await page.close();
});

test('a diverging run stops, names the step, and the page keeps working', async () => {
  const { page, errors } = await open(TINY.replace('lr=0.01', 'lr=1e30'));
  await checkDivergenceRecovers(page, errors, [['#f-lr', '0.01'], ['#f-steps', '50']]);
});

test('charts export PNG and data', async () => {
  const { page } = await open(TINY.replace('steps=400', 'steps=50'));
  await page.click('#run');
  await waitStatus(page, 'done');
  const panel = page.locator('.chart-panel', { has: page.locator('#loss-chart') });
  const [png] = await Promise.all([page.waitForEvent('download'), panel.getByRole('button', { name: 'PNG' }).click()]);
  assert.match(png.suggestedFilename(), /\.png$/);
  const [data] = await Promise.all([
    page.waitForEvent('download'),
    panel.getByRole('button', { name: /CSV|JSON/ }).click(),
  ]);
  assert.match(data.suggestedFilename(), /\.(csv|json)$/);
  const [run] = await Promise.all([page.waitForEvent('download'), page.click('#export-run')]);
  const text = await (await run.createReadStream()).toArray();
  const bundle = JSON.parse(Buffer.concat(text).toString('utf8'));
  assert.equal(bundle.instances.length, 3);
  assert.equal(bundle.instances[0].W.length, 2);
  await page.close();
});

test('without WebGPU the page says so and trains small presets on the CPU', async () => {
  const noGpu = await launch({ webgpu: false });
  try {
    const page = await noGpu.newPage();
    const errors = watchErrors(page);
    await page.goto(session.url() + '#' + TINY.replace('steps=400', 'steps=30'));
    await page.click('#run');
    await waitStatus(page, 'done', 60_000);
    assert.match(await page.textContent('#backend'), /CPU/);
    assert.equal(await page.getAttribute('body', 'data-engine-thread'), 'worker');
    assert.deepEqual(errors, []);
  } finally {
    await noGpu.close();
  }
});
