// Drives the Dagster UI in headless Chromium, as a user would: open the visual_prompts asset graph, select
// bev_image, "Materialize selected…", pick the scene partition, launch, wait for the run, then open the
// partition's metadata and check that the BEV preview image renders. Prints one JSON line with the outcome.
//
// usage: node materialize_bev.cjs URL SCENE_ID OUT_DIR   (env PLAYWRIGHT_CORE = path of the playwright-core module,
//        CHROMIUM = browser executable, USER_DATA_DIR = a fresh profile folder)
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const path = require('path');

const [url, sceneId, outDir] = process.argv.slice(2);
const RUN_TIMEOUT_MS = 240000;

async function graphql(query, variables = {}) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ query, variables }),
  });
  return (await response.json()).data;
}

async function waitForRun(prefix) {
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  const query = '{ runsOrError(limit: 20) { ... on Runs { results { runId status } } } }';
  while (Date.now() < deadline) {
    const runs = (await graphql(query)).runsOrError.results;
    const run = runs.find((r) => r.runId.startsWith(prefix));
    if (run && ['SUCCESS', 'FAILURE', 'CANCELED'].includes(run.status)) return run;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`run ${prefix} did not finish in ${RUN_TIMEOUT_MS / 1000} s`);
}

(async () => {
  const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  // Dagster OSS shows a one-time "Join the Dagster community" dialog over whatever page is open first.
  await page.addLocatorHandler(page.getByRole('button', { name: 'Skip' }), async (skip) => skip.click());
  const result = {};
  try {
    await page.goto(`${url}/locations/gpt4scene/asset-groups/visual_prompts/lineage`, { waitUntil: 'networkidle' });
    const node = page.getByText('bev_image', { exact: true }).first();
    await node.waitFor();
    await page.getByText('marked_frames', { exact: true }).first().waitFor();
    // let the nodes' status rows load (and the community dialog fade) before the picture
    await page.waitForFunction(() => !document.body.innerText.includes('Loading…'), null, { timeout: 15000 })
      .catch(() => {});
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(outDir, 'asset_graph.png') });

    await node.click();
    await page.getByRole('button', { name: 'Materialize selected…' }).click();
    const dialog = page.locator('.dagster-dialog');
    await dialog.getByText('Launch runs to materialize bev_image').waitFor();
    await dialog.getByText('Select a partition or create one').click();
    await page.getByRole('dialog').getByText(sceneId, { exact: true }).first().click();
    await page.keyboard.press('Escape'); // close the partition picker, keep the launch dialog
    await page.screenshot({ path: path.join(outDir, 'launch_dialog.png') });
    await dialog.getByRole('button', { name: 'Launch 1 run' }).click();

    const toast = page.getByText(/Launched run [0-9a-f]{8}/);
    await toast.waitFor();
    const prefix = (await toast.innerText()).match(/Launched run ([0-9a-f]{8})/)[1];
    const run = await waitForRun(prefix);
    Object.assign(result, { run_id: run.runId, status: run.status });
    await page.goto(`${url}/runs/${run.runId}`, { waitUntil: 'networkidle' });
    await page.screenshot({ path: path.join(outDir, 'run.png') });
    if (run.status !== 'SUCCESS') throw new Error(`run ${run.runId} ended ${run.status}`);

    await page.goto(`${url}/assets/bev_image?view=partitions&partition=${sceneId}`, { waitUntil: 'networkidle' });
    await page.getByText('preview', { exact: true }).first().waitFor();
    await page.getByText('[Show Markdown]').first().click();
    const image = page.locator('img[alt="BEV"]');
    await image.waitFor();
    await image.evaluate((img) => img.decode());
    Object.assign(result, await image.evaluate((img) => ({
      src_prefix: img.src.slice(0, img.src.indexOf(",") + 1), natural_width: img.naturalWidth, natural_height: img.naturalHeight,
      shown_width: img.getBoundingClientRect().width,
    })));
    await page.screenshot({ path: path.join(outDir, 'bev_preview.png') });
    result.ok = true;
  } catch (error) {
    result.ok = false;
    result.error = String(error && error.stack ? error.stack : error);
    await page.screenshot({ path: path.join(outDir, 'failure.png') }).catch(() => {});
  } finally {
    await context.close();
  }
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
})();
