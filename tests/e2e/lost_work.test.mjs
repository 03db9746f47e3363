// Work a newcomer lost on the first clicks (issue 25, section 0), in headless Chromium on
// WebGPU (SwiftShader): each test here failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appSession, runLong, waitStatus } from './harness.mjs';

const session = appSession();
const open = session.open;

// Long enough that the measurement is still timing chunks when Run is pressed.
const MEASURED = 'v=1&nf=20&nh=5&act=relu&imp=0.9&p=log:1:0.001:6&bs=256&steps=600&lr=0.001&seed=1';

test('Run pressed while the page measures the run trains it, and the worker lives', async () => {
  for (let attempt = 0; attempt < 2; attempt++) {
    const { page, errors } = await open(MEASURED);
    // The most natural first click: as soon as the page says it is measuring.
    await page.waitForFunction(() => /Measuring/.test(document.querySelector('#estimate')?.textContent ?? ''), null, {
      timeout: 60_000,
    });
    await page.click('#run');
    await waitStatus(page, 'done');
    assert.equal(await page.isVisible('#error'), false, `attempt ${attempt}: ${await page.textContent('#error')}`);
    assert.match(await page.textContent('#step'), /600/);
    assert.deepEqual(errors, []);
    // Twice, at once: the second Run restarts the run while the first is opening.
    await page.click('#run');
    await page.click('#run');
    await waitStatus(page, 'done');
    assert.equal(await page.isVisible('#error'), false, `attempt ${attempt}, twice: ${await page.textContent('#error')}`);
    await page.close();
  }
});

test('leaving a page that trains asks first, and one that does not leaves at once', async () => {
  const { page } = await open(MEASURED.replace('steps=600', 'steps=1000000'));
  await runLong(page);
  const asked = new Promise((resolve, reject) => {
    page.once('dialog', (d) => resolve(d));
    setTimeout(() => reject(new Error('the page was left without a question')), 15_000);
  });
  await page.close({ runBeforeUnload: true });
  const dialog = await asked;
  assert.equal(dialog.type(), 'beforeunload');
  // Staying keeps the run training.
  await dialog.dismiss();
  const step = Number(await page.textContent('#step'));
  await page.waitForFunction((s) => Number(document.querySelector('#step').textContent) > s, step, { timeout: 60_000 });
  await page.click('#reset');
  await waitStatus(page, 'idle');
  let dialogs = 0;
  page.on('dialog', (d) => {
    dialogs++;
    d.accept();
  });
  const closed = new Promise((resolve) => page.once('close', resolve));
  await page.close({ runBeforeUnload: true });
  await closed;
  assert.equal(dialogs, 0, 'nothing to lose: no question');
});
