// The SAE page as a user drives it, in headless Chromium on WebGPU (SwiftShader): the lab
// switcher, every architecture training in the browser, a frontier sweep drawing its points,
// the latent table and the SAELens export, links that restore the controls, and bad input
// that gets a clear message while the page keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appSession, launch, watchErrors, updates, waitStatus, download, setField, checkBadLinks,
  checkDivergenceRecovers, unzipStored,
} from './harness.mjs';

const session = appSession();
const open = session.open;

// Planted features small enough to train in seconds on SwiftShader.
const TINY =
  'v=1&lab=sae&a.kind=topk&a.k=4&s.kind=ground_truth&s.d=16&s.n_features=40&s.probability=0.05' +
  '&d_sae=64&batch_size=128&steps=150&lr_warmup_steps=10&seed=1';
const ARCHITECTURES = ['relu_l1', 'topk', 'batch_topk', 'gated', 'jumprelu'];

test('the lab switcher moves between the labs and each keeps its own link', async () => {
  const { page, errors } = await open();
  await page.waitForSelector('#f-nf');
  await page.click('#lab-sae');
  await page.waitForSelector('#f-a-kind');
  assert.match(await page.title(), /Sparse autoencoders/);
  // The lab opens on its quick preset: an SAE on a toy model's hidden layer.
  assert.equal(await page.inputValue('#f-a-kind'), 'topk');
  assert.equal(await page.inputValue('#f-d_sae'), '80');
  assert.equal(await page.inputValue('#sae-preset'), 'superposition-hidden');
  assert.match(await page.textContent('#sae-preset-note'), /recovers the 40 features/);
  await page.waitForFunction(() => location.hash.includes('lab=sae') && location.hash.includes('d_sae=80'));
  await page.waitForFunction(() => /WebGPU/.test(document.querySelector('#backend')?.textContent ?? ''));
  await page.click('#lab-superposition');
  await page.waitForSelector('#f-nf');
  assert.equal(await page.isVisible('#f-a-kind'), false);
  assert.match(await page.title(), /Superposition/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('an SAE trains to the end: curves, evaluation, density, latent table and SAELens export', async () => {
  const { page, errors } = await open(TINY);
  await page.click('#run');
  await page.waitForFunction(() => Number(document.querySelector('#sae-loss-chart')?.dataset.updates) >= 2, null, {
    timeout: 60_000,
  });
  await waitStatus(page, 'done');
  assert.match(await page.textContent('#step'), /150/);
  for (const id of ['#sae-loss-chart', '#sae-l0-chart', '#sae-quality-chart', '#sae-density-chart']) {
    assert.ok((await updates(page, id)) >= 1, `${id} was drawn`);
  }
  assert.equal(await page.isVisible('#sae-frontier-panel'), false, 'no frontier for one run');
  const summary = await page.textContent('#sae-summary');
  assert.match(summary, /TopK k 4 · run 1 of 1 · step 150 of 150/);
  assert.match(summary, /MMCS 0\.\d+ · recovered \d+ of 40/);
  const rows = await page.locator('#latent-table tbody tr').count();
  assert.ok(rows > 0 && rows <= 64, `latent rows: ${rows}`);
  // Sorting by cosine puts the best match first.
  await page.selectOption('#latent-order', 'cosine');
  const cos = await page.locator('#latent-table tbody tr td:nth-child(5)').allTextContents();
  const values = cos.map(Number);
  assert.ok(values.every((v, i) => i === 0 || values[i - 1] >= v), `sorted by cosine: ${values.slice(0, 5)}`);
  // One archive holding the folder SAELens loads, named with the architecture, size and seed.
  const zip = await download(page, () => page.click('#export-saelens'));
  assert.equal(zip.name, 'mechlab-sae-topk-64x16-seed1.zip');
  const folder = unzipStored(zip.bytes);
  assert.deepEqual(Object.keys(folder), [
    'mechlab-sae-topk-64x16-seed1/cfg.json',
    'mechlab-sae-topk-64x16-seed1/sae_weights.safetensors',
  ]);
  const parsed = JSON.parse(folder['mechlab-sae-topk-64x16-seed1/cfg.json'].toString('utf8'));
  assert.equal(parsed.d_sae, 64);
  assert.equal(parsed.d_in, 16);
  const table = await download(page, () => page.click('#latents-data'));
  assert.equal(table.bytes.toString('utf8').trim().split('\n').length, 65, 'a header and 64 latents');
  const run = await download(page, () => page.click('#export-run'));
  const bundle = JSON.parse(run.bytes.toString('utf8'));
  assert.equal(bundle.runs.length, 1);
  assert.ok(bundle.metrics.ground_truth.mmcs > 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test('every architecture trains in the browser, on the CPU reference and on WebGPU', async () => {
  for (const arch of ARCHITECTURES) {
    const base = TINY.replace('a.kind=topk&a.k=4', `a.kind=${arch}`);
    const link = arch === 'topk' ? base + '&a.k=4' : base;
    const { page, errors } = await open(link.replace('steps=150', 'steps=40'));
    assert.equal(await page.inputValue('#f-a-kind'), arch);
    // auto: on SwiftShader the CPU reference is the faster engine.
    await page.click('#run');
    await waitStatus(page, 'done');
    assert.match(await page.textContent('#sae-summary'), /run 1 of 1 · step 40 of 40 · on CPU reference/, arch);
    // The WebGPU kernels, on the software adapter: a few steps each.
    await setField(page, '#f-steps', '6');
    await page.selectOption('#sae-engine', 'webgpu');
    await page.click('#run');
    await waitStatus(page, 'done', 180_000);
    const summary = await page.textContent('#sae-summary');
    assert.match(summary, /run 1 of 1 · step 6 of 6 · on .*SwiftShader|step 6 of 6 · on .*software adapter/i, `${arch}: ${summary}`);
    assert.doesNotMatch(summary, /CPU reference/, arch);
    assert.match(summary, /MMCS 0\.\d+/, arch);
    assert.deepEqual(errors, [], arch);
    await page.close();
  }
});

test('a frontier sweep trains each run and draws its points', async () => {
  const link = TINY.replace('steps=150', 'steps=30').replace('a.k=4', 'a.k=4&sweep=frontier:topk,relu_l1');
  const { page, errors } = await open(link);
  assert.match(await page.inputValue('#sae-sweep'), /^some:relu_l1,topk$/);
  assert.equal(await page.isVisible('#sae-frontier-panel'), true);
  await page.click('#run');
  await waitStatus(page, 'done', 300_000);
  assert.match(await page.textContent('#total-steps'), /300/);
  assert.ok((await updates(page, '#sae-frontier-chart')) >= 2);
  const data = await download(page, () => page.click('#sae-frontier-chart-data'));
  const points = JSON.parse(data.bytes.toString('utf8')).points;
  assert.equal(points.length, 10);
  assert.deepEqual([...new Set(points.map((p) => p.architecture))], ['relu_l1', 'topk']);
  assert.ok(points.every((p) => p.l0 >= 0 && p.normalized_mse >= 0));
  // The strip names the run's own setting, and the chart its points' settings.
  assert.match(await page.textContent('#sae-summary'), /TopK k \d+ · run 10 of 10/);
  assert.match(await page.getAttribute('#sae-frontier-chart', 'aria-label'), /ReLU.*\(λ [\d.e-]+\).*TopK.*\(k \d+\)/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a shared link restores the controls, and changing the architecture shows its own fields', async () => {
  const link = TINY.replace('a.kind=topk&a.k=4', 'a.kind=jumprelu&a.bandwidth=0.02').replace('seed=1', 'seed=77');
  const { page } = await open(link);
  assert.equal(await page.inputValue('#f-a-kind'), 'jumprelu');
  assert.equal(await page.inputValue('#f-a-bandwidth'), '0.02');
  assert.equal(await page.inputValue('#f-seed'), '77');
  assert.equal(await page.inputValue('#sae-preset'), 'custom');
  await page.selectOption('#f-a-kind', 'gated');
  await page.waitForSelector('#f-a-l1_coefficient');
  assert.equal(await page.locator('#f-a-bandwidth').count(), 0);
  await page.waitForFunction(() => location.hash.includes('a.kind=gated'));
  await setField(page, '#f-d_sae', '96');
  await page.waitForFunction(() => location.hash.includes('d_sae=96'));
  const other = await session.newPage();
  await other.goto(page.url());
  await other.waitForSelector('#f-a-kind');
  for (const id of ['#f-a-kind', '#f-a-l1_coefficient', '#f-d_sae', '#f-s-d', '#f-seed', '#f-batch_size']) {
    assert.equal(await other.inputValue(id), await page.inputValue(id), id);
  }
  await other.close();
  await page.close();
});

test('bad links show a clear message and fall back to defaults', async () => {
  await checkBadLinks(
    open,
    [
      ['v=1&lab=sae&a.kind=resnet', /a\.kind=resnet/],
      ['v=1&lab=sae&a.kind=topk&a.k=5000', /`a\.k=5000` was replaced by `16`: k must be between/],
      ['v=1&lab=sae&d_sae=many', /d_sae=many.*whole number/],
      ['v=9&lab=sae', /newer/],
    ],
    '#f-d_sae',
    '1024',
  );
});

test('invalid controls are named, marked and block the run until fixed', async () => {
  const { page } = await open(TINY);
  await setField(page, '#f-a-k', '0');
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match(await page.textContent('#error'), /k = 0/);
  assert.equal(await page.getAttribute('#f-a-k', 'aria-invalid'), 'true');
  assert.equal(await page.isEnabled('#run'), false);
  await setField(page, '#f-a-k', '100');
  assert.match(await page.textContent('#error'), /k = 100/, 'k > d_sae is refused');
  await setField(page, '#f-a-k', '4');
  await page.waitForFunction(() => !document.querySelector('#run').disabled);
  await page.close();
});

test('a diverging run stops, names the step, and the page keeps working', async () => {
  const { page, errors } = await open(TINY + '&learning_rate=1e30&max_grad_norm=0');
  await checkDivergenceRecovers(page, errors, [['#f-learning_rate', '0.001'], ['#f-steps', '20']]);
});

test('without WebGPU small SAEs train on the CPU and large ones are refused by name', async () => {
  const noGpu = await launch({ webgpu: false });
  try {
    const page = await noGpu.newPage();
    const errors = watchErrors(page);
    await page.goto(session.url() + '#' + TINY.replace('steps=150', 'steps=30'));
    await page.click('#run');
    await waitStatus(page, 'done', 60_000);
    assert.match(await page.textContent('#backend'), /CPU/);
    assert.match(await page.textContent('#sae-summary'), /step 30 of 30/);
    await page.goto(session.url() + '#v=1&lab=sae');
    await page.waitForFunction(() => document.querySelector('#f-d_sae')?.value === '1024');
    await page.click('#run');
    await waitStatus(page, 'error', 60_000);
    assert.match(await page.textContent('#error'), /needs WebGPU: batch × d_in × d_sae/);
    assert.deepEqual(errors, []);
  } finally {
    await noGpu.close();
  }
});
