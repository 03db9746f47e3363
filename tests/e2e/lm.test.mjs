// The Transformer page as a user drives it, in headless Chromium on WebGPU (SwiftShader), at a
// tiny size: the solu-vs-gelu pair training side by side on Shakespeare, samples, looking inside
// a prompt, a checkpoint saved mid-run that opens again and resumes exactly, the user's own
// text, links that restore the controls, and bad files and links named while the page keeps
// working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { appSession, status, waitStatus, download, setField, checkBadLinks } from './harness.mjs';

const session = appSession();
const open = session.open;

// Small enough that the CPU reference (auto's choice on SwiftShader) trains it in seconds.
const SHAPE =
  'model.d_model=32&model.n_heads=2&model.d_head=16&model.d_mlp=64&model.n_ctx=32' +
  '&batch_size=4&warmup_steps=4&eval_windows=4&seed=1';
const PAIR = `v=1&lab=lm&model.act_fn=solu_ln&vs=gelu&steps=40&${SHAPE}`;
const SINGLE = `v=1&lab=lm&model.act_fn=gelu&steps=60&${SHAPE}`;
const FIXTURE = path.resolve(import.meta.dirname, '../../engine/tests/fixtures/transformer_lens/gelu');

/** The run's export, parsed. */
async function exported(page) {
  const d = await download(page, () => page.click('#export-run'));
  return JSON.parse(d.bytes.toString('utf8'));
}

test('a BPE vocabulary trained while the page measures the run is reused when it starts', async () => {
  const { page, errors } = await open(`v=1&lab=lm&model.act_fn=gelu&steps=4&tokenizer.kind=bpe&tokenizer.vocab_size=300&${SHAPE}`);
  // The estimate opens the job, which trains the BPE vocabulary once.
  await page.waitForFunction(
    () => /measured over \d+ steps?/.test(document.querySelector('#estimate')?.textContent ?? ''),
    null,
    { timeout: 120_000 },
  );
  await page.click('#run');
  await waitStatus(page, 'done', 120_000);
  assert.match(
    await page.textContent('#lm-data'),
    /shakespeare: \d+ training and \d+ validation tokens, a 300-token BPE vocabulary \(reused, made earlier in \d+\.\d s\)/,
  );
  assert.deepEqual(errors, []);
  await page.close();
});

test('the solu-vs-gelu pair trains side by side: both curves, samples, the comparison, a look inside', async () => {
  const { page, errors } = await open(PAIR);
  assert.match(await page.title(), /Transformer/);
  assert.equal(await page.inputValue('#f-vs'), 'gelu');
  assert.equal(await page.inputValue('#f-model-act_fn'), 'solu_ln');
  assert.equal(await page.inputValue('#f-model-d_model'), '32');
  await page.click('#run');
  await waitStatus(page, 'done', 180_000);
  assert.match(await page.textContent('#step'), /^40$/);
  assert.ok(Number(await page.getAttribute('#lm-loss-chart', 'data-updates')) >= 2);
  const summary = await page.textContent('#lm-summary');
  assert.match(summary, /solu_ln: loss \d\.\d+, validation \d\.\d+ · gelu: loss \d\.\d+, validation \d\.\d+ · \d+ tokens\/s/);
  assert.match(summary, /on CPU reference/);
  assert.match(await page.textContent('#lm-compare'), /Held-out loss at step 40: solu_ln \d\.\d{4} · gelu \d\.\d{4} · solu_ln − gelu = [+-]\d\.\d{4} nats per token/);
  assert.match(await page.textContent('#lm-data'), /shakespeare: \d+ training and \d+ validation tokens, a \d+-token character vocabulary/);
  for (const i of [0, 1]) {
    assert.ok((await page.textContent(`#lm-sample-${i}`)).length > 20, `sample ${i}`);
  }
  // A finished run is looked inside at once: ten next tokens per model and the attention chart.
  await page.waitForSelector('#lm-next-1 li');
  assert.equal(await page.locator('#lm-next-0 li').count(), 10);
  const drawn = Number(await page.getAttribute('#lm-attention-chart', 'data-updates'));
  await page.selectOption('#lm-head', '1');
  await page.waitForFunction((n) => Number(document.querySelector('#lm-attention-chart').dataset.updates) > n, drawn);
  // Prompt text is data: a character the vocabulary lacks is named, markup is never parsed.
  await page.fill('#lm-prompt', '<b>ROMEO</b>');
  await page.click('#lm-inspect');
  await page.waitForSelector('#lm-inspect-error', { state: 'visible' });
  assert.match(await page.textContent('#lm-inspect-error'), /character '<' is not in the tokenizer's vocabulary/);
  assert.equal(await page.locator('#lm-inspect-panel b').count(), 0);
  await page.fill('#lm-prompt', 'ROMEO & "JULIET"');
  await page.click('#lm-inspect');
  await page.waitForSelector('#lm-inspect-error', { state: 'hidden' });
  await page.waitForFunction(() => document.querySelector('#lm-continuation-0')?.textContent.length > 0);
  const attention = await download(page, () => page.click('#lm-attention-chart-data'));
  const views = JSON.parse(attention.bytes.toString('utf8'));
  assert.deepEqual(views.map((v) => v.model), ['solu_ln', 'gelu']);
  assert.deepEqual(views[0].tokens.slice(5, 9), [' ', '&', ' ', '"']);
  assert.equal(views[0].hook_pattern.length, 1, 'one layer');
  assert.equal(views[0].hook_pattern[0].length, 2 * 16 * 16, '[n_heads, 16 tokens, 16 tokens]');
  const run = await exported(page);
  assert.deepEqual(run.models.map((m) => m.act_fn), ['solu_ln', 'gelu']);
  assert.ok(run.models.every((m) => m.validation.loss.length >= 1 && m.train.loss.length >= 2));
  // The link restores the pair in a new tab.
  const other = await session.newPage();
  await other.goto(page.url());
  await other.waitForSelector('#f-vs');
  for (const id of ['#f-vs', '#f-model-act_fn', '#f-model-d_model', '#f-steps', '#f-seed', '#lm-preset']) {
    assert.equal(await other.inputValue(id), await page.inputValue(id), id);
  }
  await other.close();
  assert.deepEqual(errors, []);
  await page.close();
});

test('on WebGPU the pair trains too, and its held-out losses are close to the CPU reference’s', async () => {
  // The same few steps on both engines: the GPU kernels are tested against the CPU reference
  // natively; here the page's own WebGPU path runs end to end in the browser.
  const link = PAIR.replace('steps=40', 'steps=6');
  const finals = {};
  for (const engine of ['webgpu', 'cpu']) {
    const { page, errors } = await open(link);
    await page.selectOption('#lm-engine', engine);
    await page.click('#run');
    await waitStatus(page, 'done', 300_000);
    const summary = await page.textContent('#lm-summary');
    assert.match(summary, engine === 'cpu' ? /GFLOP\/s on CPU reference/ : /GFLOP\/s on (?!CPU reference)\S/, summary);
    const run = await exported(page);
    finals[engine] = run.models.map((m) => m.validation.loss.at(-1));
    assert.ok(finals[engine].every(Number.isFinite), `${engine}: ${finals[engine]}`);
    assert.deepEqual(errors, []);
    await page.close();
  }
  for (const i of [0, 1]) {
    assert.ok(Math.abs(finals.webgpu[i] - finals.cpu[i]) < 1e-2, `model ${i}: ${finals.webgpu[i]} vs ${finals.cpu[i]}`);
  }
});

test('a checkpoint saved mid-run opens again and resumes with the same losses', async () => {
  const { page, errors } = await open(SINGLE);
  await page.click('#run');
  await page.waitForFunction(() => Number(document.querySelector('#step').textContent) > 0);
  await page.click('#pause');
  await waitStatus(page, 'paused');
  const step = Number(await page.textContent('#step'));
  assert.ok(step > 0 && step < 60, `paused at ${step}`);
  const saved = await download(page, () => page.click('#lm-save'));
  assert.equal(saved.name, `mechlab-lm-step${step}.zip`);
  await page.click('#pause');
  await waitStatus(page, 'done', 120_000);
  const whole = await exported(page);
  const zip = path.join(fs.mkdtempSync('/tmp/mechlab-lm-'), saved.name);
  fs.writeFileSync(zip, saved.bytes);

  // A fresh page opens the archive paused at that step, with the run's controls.
  const { page: again } = await open('v=1&lab=lm');
  await again.setInputFiles('#lm-checkpoint-file', zip);
  await waitStatus(again, 'paused');
  assert.equal(Number(await again.textContent('#step')), step);
  assert.match(await again.textContent('#lm-opened'), new RegExp(`gelu at step ${step} of 60`));
  assert.equal(await again.inputValue('#f-model-act_fn'), 'gelu');
  assert.equal(await again.inputValue('#f-vs'), 'none');
  await again.waitForSelector('#lm-next-0 li');
  await again.click('#pause');
  await waitStatus(again, 'done', 120_000);
  const resumed = await exported(again);
  const last = (r) => r.models[0].validation.loss.at(-1);
  assert.equal(last(resumed), last(whole), 'the final held-out loss is the uninterrupted run’s');
  assert.deepEqual(errors, []);
  await again.close();

  // Run, the button people press, continues the opened model too (it used to start afresh),
  // and the same file picked again opens it again (the picker is emptied once it is read).
  const { page: third, errors: thirdErrors } = await open('v=1&lab=lm');
  await third.setInputFiles('#lm-checkpoint-file', zip);
  await waitStatus(third, 'paused');
  assert.equal(await third.inputValue('#lm-checkpoint-file'), '', 'the picker is emptied');
  assert.match(await third.textContent('#lm-opened'), /Run or Resume continues its training exactly/);
  // Files that cannot open (TransformerLens's without a tokenizer) leave the opened model be.
  await third.setInputFiles('#lm-checkpoint-file', ['config.json', 'model.safetensors'].map((f) => path.join(FIXTURE, f)));
  await third.waitForFunction(() => /no tokenizer\.json/.test(document.querySelector('#error').textContent));
  assert.equal(await status(third), 'paused');
  assert.equal(Number(await third.textContent('#step')), step);
  assert.match(await third.textContent('#lm-opened'), new RegExp(`gelu at step ${step} of 60`));
  await third.click('#reset');
  await waitStatus(third, 'idle');
  await third.setInputFiles('#lm-checkpoint-file', zip);
  await waitStatus(third, 'paused');
  assert.equal(Number(await third.textContent('#step')), step, 'the same file opened again');
  await third.click('#run');
  await waitStatus(third, 'done', 120_000);
  const continued = await exported(third);
  assert.equal(last(continued), last(whole), 'Run continued the opened model');
  assert.deepEqual(thirdErrors, []);
  await third.close();
  await page.close();
});

test('a text of your own trains, and bad files are named while the page keeps working', async () => {
  const { page, errors } = await open(SINGLE.replace('steps=60', 'steps=10'));
  const bad = (name, bytes) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(bytes) });
  await page.setInputFiles('#lm-corpus-file', bad('latin1.txt', [0x63, 0x61, 0x66, 0xe9, 0x0a]));
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match(await page.textContent('#error'), /latin1\.txt is not UTF-8 text: byte 0xe9 at line 1, column 4/);
  await page.setInputFiles('#lm-corpus-file', bad('empty.txt', []));
  await page.waitForFunction(() => /empty\.txt holds no text/.test(document.querySelector('#error').textContent));
  await page.setInputFiles('#lm-checkpoint-file', bad('broken.zip', [0x50, 0x4b, 1, 2, 3]));
  await page.waitForFunction(() => /broken\.zip: cannot load model: not a zip archive/.test(document.querySelector('#error').textContent));
  // TransformerLens's own files without a tokenizer: the page says what they lack, and what
  // was open stays as it was (it used to be replaced by an error at step 0).
  await page.setInputFiles('#lm-checkpoint-file', ['config.json', 'model.safetensors'].map((f) => path.join(FIXTURE, f)));
  await page.waitForFunction(() => /no tokenizer\.json/.test(document.querySelector('#error').textContent));
  assert.equal(await status(page), 'idle');
  assert.equal(await page.inputValue('#f-model-d_model'), '32', 'the controls are as they were');
  const text = Array.from({ length: 300 }, (_, i) => `the cat sat on mat number ${i % 9}.`).join('\n');
  await page.setInputFiles('#lm-corpus-file', bad('cats.txt', Buffer.from(text)));
  await page.waitForFunction(() => /cats\.txt: \d+ characters/.test(document.querySelector('#lm-corpus').textContent));
  await setField(page, '#f-steps', '10');
  await page.click('#run');
  await waitStatus(page, 'done', 60_000);
  assert.match(await page.textContent('#lm-data'), /^cats: \d+ training and \d+ validation tokens/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('bad links and controls are named and the page keeps working', async () => {
  await checkBadLinks(
    open,
    [
      ['v=1&lab=lm&vs=relu', /`vs=relu`/],
      ['v=1&lab=lm&model.n_heads=x', /model\.n_heads=x/],
      ['v=1&lab=lm&model.act_fn=gelu&vs=gelu', /must differ/],
      ['v=1&lab=lm&tokenizer.kind=words', /char or bpe/],
    ],
    '#f-model-d_model',
    '64',
  );
  const { page } = await open(PAIR);
  await setField(page, '#f-model-n_ctx', '5000');
  await page.waitForSelector('#error', { state: 'visible' });
  assert.match(await page.textContent('#error'), /n_ctx = 5000/);
  assert.equal(await page.getAttribute('#f-model-n_ctx', 'aria-invalid'), 'true');
  assert.equal(await page.isEnabled('#run'), false);
  await setField(page, '#f-model-n_ctx', '32');
  await page.waitForFunction(() => !document.querySelector('#run').disabled);
  await page.close();
});
