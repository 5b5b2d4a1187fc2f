import t from 'tap';
import { launchBrowser, openPage, screenshot } from './helpers/browser.ts';
import { startTestService } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

// /docs in a real browser (Debian's Chromium): Swagger UI renders every operation of the OpenAPI
// document, loading nothing from anywhere but the gateway itself (no CDN), under its CSP.
const service = await startTestService(t);
const browser = await launchBrowser(t);

t.test('the API reference renders every operation, from this process alone', async (t) => {
  const { page, problems } = await openPage(t, browser);
  const elsewhere: string[] = [];
  const failed: string[] = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(service.url)) elsewhere.push(request.url());
  });
  page.on('response', (response) => {
    if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
  });
  await page.goto(`${service.url}/docs`);
  const openapi = (await service.api().get('/openapi.json')).body as {
    paths: Record<string, object>;
    webhooks: Record<string, object>;
  };
  // Swagger UI draws one block per operation, the webhooks' included.
  const operations = [...Object.values(openapi.paths), ...Object.values(openapi.webhooks)].reduce(
    (n, item) => n + Object.keys(item).length,
    0,
  );
  await waitFor(
    'Swagger UI to draw every operation',
    async () => ((await page.locator('.opblock').count()) === operations ? true : undefined),
    { timeoutMs: 20_000 },
  );
  t.equal(await page.locator('.opblock').count(), operations, `${operations} operations rendered`);
  t.match(await page.locator('.info .title').innerText(), /Payment order gateway/);
  // Open one operation: its schema is rendered from the document.
  await page.locator('#operations-Payment_orders-createPaymentOrder .opblock-summary').click();
  await page.waitForSelector('#operations-Payment_orders-createPaymentOrder .parameters-container');
  t.match(
    await page.locator('#operations-Payment_orders-createPaymentOrder').innerText(),
    /Idempotency-Key/,
    'the create shows its Idempotency-Key header',
  );
  await screenshot(page, 'docs', 'api-reference');
  t.same(elsewhere, [], 'no request left the gateway');
  t.same(failed, [], 'every request the page made succeeded');
  t.same(problems, [], 'no script error or policy violation');
});

t.test('the guide and a problem page render without script', async (t) => {
  const { page, problems } = await openPage(t, browser);
  await page.goto(`${service.url}/docs/receiving-events`);
  t.equal(await page.locator('h1').innerText(), 'Receiving events');
  t.ok((await page.locator('pre code').innerText()).includes('webhook.verify(raw'), 'the example is shown as code');
  await screenshot(page, 'docs', 'receiving-events');
  await page.goto(`${service.url}/problems/idempotency_key_reused`);
  t.equal(await page.locator('h1').innerText(), 'idempotency_key_reused');
  await screenshot(page, 'docs', 'problem-page');
  t.same(problems, []);
});
