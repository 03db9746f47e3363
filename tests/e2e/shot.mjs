// Not a test: makes the README's screenshot of the Transformer page mid-training
// (node tests/e2e/shot.mjs OUT.png, with MECHLAB_DIST set).
import { serveDist, launch } from './harness.mjs';
const out = process.argv[2] ?? 'transformer.png';
const server = await serveDist();
const ctx = await launch();
const page = await ctx.newPage();
await page.setViewportSize({ width: 1280, height: 1560 });
await page.goto(`${server.url}#v=1&lab=lm`);
await page.waitForSelector('#run:not([disabled])');
await page.click('#run');
await page.waitForTimeout(Number(process.env.SHOT_AFTER_MS ?? 90000));
await page.fill('#lm-prompt', 'ROMEO:');
await page.click('#lm-inspect');
await page.waitForTimeout(8000);
console.log(await page.textContent('#lm-summary'), '|', await page.textContent('#step'));
await page.screenshot({ path: out, fullPage: false });
await ctx.close();
await server.close();
