// The operator console in a real browser (headless Chromium, test/helpers/browser.ts) against the
// whole service on a database of its own: the key form, a merchant key refused, the overview's
// numbers against the database's own counts and their refresh without a reload, an order's story
// from the search box, and the three actions (redeliver, resolve, re-enable) judged by what the
// API answers afterwards. Screenshots of each page go to test-output/console/.
import type { Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { launchBrowser, openPage, screenshot, type WatchedPage } from './helpers/browser.ts';
import { arrangeConsoleState, CONSOLE_TEST_ENV, databaseCounts } from './helpers/console-fixture.ts';
import { startTestService } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

const service = await startTestService(t, CONSOLE_TEST_ENV);
const fixture = await arrangeConsoleState(service);
const operator = await service.operator('console-browser');
const browser = await launchBrowser(t);
const consoleUrl = `${service.url}/console`;

/** The number a `data-figure` element shows (digits only: "1,234" is 1234), or null while it is not there. */
async function figure(page: Page, name: string): Promise<number | null> {
  const node = page.locator(`[data-figure="${name}"]`).first();
  if ((await node.count()) === 0) return null;
  const text = (await node.textContent()) ?? '';
  return /\d/.test(text) ? Number(text.replace(/\D/g, '')) : null;
}

/** Waits until the figure shows `expected` (the page polls on its own; nothing here reloads it). */
async function figureBecomes(page: Page, name: string, expected: number, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${name} = ${expected} on the page`, async () => (await figure(page, name)) === expected, {
    timeoutMs,
    intervalMs: 100,
  });
}

async function signIn(watched: WatchedPage, key: string): Promise<void> {
  await watched.page.goto(consoleUrl);
  await watched.page.locator('#key-input').fill(key);
  await watched.page.locator('#key-form button[type="submit"]').click();
}

function noPolicyProblems(t: Test, watched: WatchedPage): void {
  t.same(watched.problems, [], 'no script error, no CSP or Trusted Types violation');
}

t.test('no key: the key form, and nothing else', async (t) => {
  const watched = await openPage(t, browser);
  const { page } = watched;
  await page.goto(consoleUrl);
  await page.locator('#key-form').waitFor({ state: 'visible' });
  t.ok(await page.locator('#overview-view').isHidden(), 'no overview');
  t.equal(await page.locator('#updated').textContent(), 'no key');
  await screenshot(page, 'console', '1-key-form');
  noPolicyProblems(t, watched);
});

t.test('a merchant key: the endpoints say 403 and the page shows the refusal', async (t) => {
  const watched = await openPage(t, browser);
  const { page } = watched;
  const answers: number[] = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/operator/overview') answers.push(response.status());
  });
  await signIn(watched, fixture.acme.key);
  const notice = page.locator('#notice');
  await notice.waitFor({ state: 'visible' });
  t.match(await notice.textContent(), /may not use the console: .*operator key.*\(403 operator_key_required\)/);
  t.equal(await notice.getAttribute('data-code'), 'operator_key_required');
  t.same(answers, [403], 'the overview answered 403');
  t.ok(await page.locator('#key-form').isVisible(), 'the key form again');
  t.ok(await page.locator('#overview-view').isHidden());
  t.equal(await page.locator('#overview-view').textContent(), '', 'no data was rendered');
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'the refused key is not kept');
  await screenshot(page, 'console', '2-merchant-key-refused');
  noPolicyProblems(t, watched);
});

const watched = await openPage(t, browser);
const { page } = watched;

t.test('overview: the numbers the database holds', async (t) => {
  await signIn(watched, operator.key);
  await page.locator('[data-figure="orders.pending"]').waitFor();
  t.equal(await page.evaluate(() => sessionStorage.length), 1, 'the key is kept in this tab');
  const counts = await databaseCounts(service);
  const shown = {
    pending: await figure(page, 'orders.pending'),
    processing: await figure(page, 'orders.processing'),
    reconciling: await figure(page, 'orders.reconciling'),
    underReview: await figure(page, 'orders.underReview'),
    stuck: await figure(page, 'orders.stuck'),
    completed: await figure(page, 'orders.recent.COMPLETED'),
    failed: await figure(page, 'orders.recent.FAILED'),
    unrelayed: await figure(page, 'outbox.webhooks.unrelayed'),
    deliveriesPending: await figure(page, 'outbox.webhooks.deliveriesPending'),
    calls: await figure(page, 'providerCalls.calls'),
  };
  t.same(shown, {
    pending: counts.pending,
    processing: counts.processing,
    reconciling: counts.reconciling,
    underReview: counts.underReview,
    stuck: counts.stuck,
    completed: counts.completedLastHour,
    failed: counts.failedLastHour,
    unrelayed: counts.unrelayed,
    deliveriesPending: counts.deliveriesPending,
    calls: counts.callsLast10Minutes,
  });
  t.equal(await page.locator('[data-figure="outbox.kafka.unpublished"]').count(), 0, 'no Kafka card without Kafka');

  const perProvider = await service.database.rows<{ provider: string; calls: number; limited: number }>(
    `select provider, count(*)::int as calls, count(*) filter (where http_status = 429)::int as limited
     from provider_attempts where started_at > now() - interval '9 minutes' group by provider`,
  );
  for (const p of perProvider) {
    t.equal(await figure(page, `rate.${p.provider}.calls`), p.calls, `${p.provider}: calls`);
    t.equal(await figure(page, `rate.${p.provider}.rateLimited`), p.limited, `${p.provider}: 429s`);
    t.ok(
      (await page.locator(`figure[data-provider="${p.provider}"] svg rect`).count()) > 0,
      `${p.provider}: bars drawn`,
    );
  }

  const stuckIds = (
    await service.database.rows(
      `select id from payment_orders where status in ('PENDING', 'PROCESSING') and created_at < now() - interval '5 minutes'
       order by created_at, id`,
    )
  ).map((r) => r.id);
  const stuckPanel = page.locator('section.panel', { hasText: 'Stuck: not final' });
  t.same(
    await stuckPanel.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-order-id'))),
    stuckIds,
  );

  // Values are text, never markup: the merchant's name and the review's detail carry tags.
  t.equal(await page.locator('#injected').count(), 0, 'no element from a merchant name');
  t.equal(await page.locator('main script').count(), 0, 'no script from a review detail');
  t.ok(await page.getByText('Acme <b id="injected">&</b> "shop"').first().isVisible(), 'the name, shown as text');
  t.ok(await page.getByText('no callback <script>alert(1)</script>', { exact: false }).isVisible());
  t.match(await page.locator('#updated').textContent(), /^updated \d\d?:\d\d:\d\d/);
  await screenshot(page, 'console', '3-overview');
  noPolicyProblems(t, watched);
});

t.test('overview: the numbers refresh by themselves, without a reload', async (t) => {
  await page.evaluate(() => {
    (globalThis as { notReloaded?: boolean }).notReloaded = true;
  });
  const firstUpdate = await page.locator('#updated').getAttribute('data-at');
  const created = await fixture.acme.api.createOrder({
    amount: 1234,
    currency: 'usd',
    paymentMethod: { type: 'card', token: 'pm_card_visa' },
  });
  t.equal(created.status, 201);
  await figureBecomes(page, 'orders.pending', (await databaseCounts(service)).pending);

  // And a change made behind the API's back, in the table itself.
  await service.database.rows(
    `insert into provider_attempts (order_id, provider, attempt_number, kind, started_at, ended_at, outcome, http_status)
     values ($1, 'stripe', 99, 'charge', now(), now(), 'retry', 429)`,
    [fixture.order.reconciling],
  );
  const limited = await service.database.rows<{ n: number }>(
    `select count(*)::int as n from provider_attempts where provider = 'stripe' and http_status = 429 and started_at > now() - interval '9 minutes'`,
  );
  await figureBecomes(page, 'rate.stripe.rateLimited', limited[0]!.n);
  t.ok(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded === true), 'the same page');
  t.not(await page.locator('#updated').getAttribute('data-at'), firstUpdate, '"updated at" moved on');
  noPolicyProblems(t, watched);
});

t.test('search: an order’s whole story', async (t) => {
  await page.locator('#search-id').fill(fixture.order.completed);
  await page.locator('#search-form button[type="submit"]').click();
  const head = page.locator(`#order-view [data-order-id="${fixture.order.completed}"]`);
  await head.waitFor();
  t.equal(new URL(page.url()).hash, `#/orders/${fixture.order.completed}`);
  t.equal(await head.locator('[data-figure="order.status"]').textContent(), 'COMPLETED');
  const history = await service.database.count('payment_order_transitions', 'order_id = $1', [fixture.order.completed]);
  const historyPanel = page.locator('#order-view section.panel', { hasText: 'History' });
  t.equal(await historyPanel.locator('tbody tr').count(), history, 'every transition');
  const deliveries = await service.database.rows(
    `select d.id from webhook_deliveries d join outbox_events e on e.id = d.event_id where e.order_id = $1 order by d.created_at, d.id`,
    [fixture.order.completed],
  );
  const event = page.locator(`[data-event-id="${fixture.event.completed}"]`);
  t.same(
    await event.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-delivery-id'))),
    deliveries.map((d) => d.id),
    'every delivery of its event',
  );
  t.equal(
    await event.locator(`[data-delivery-id="${fixture.delivery.failing}"] ol.attempts li`).count(),
    2,
    'with its attempts',
  );
  t.ok(await event.getByText('HTTP 500 <i>oops</i>').first().isVisible(), 'an error text, as text');
  await screenshot(page, 'console', '4-order-story');

  await page.locator('#search-id').fill('po_00000000000000000000000000');
  await page.locator('#search-form button[type="submit"]').click();
  await page.getByText('No such payment order').waitFor();
  noPolicyProblems(t, watched);
});

t.test('redeliver: an event’s dead delivery goes back to pending', async (t) => {
  await page.goto(`${consoleUrl}#/orders/${fixture.order.completed}`);
  const row = page.locator(`[data-delivery-id="${fixture.delivery.dead}"]`);
  t.equal(await row.locator('[data-figure="delivery.status"]').textContent(), 'dead');
  await row.locator('button[data-action="redeliver"]').click();
  await page.locator('#notice', { hasText: `Redelivery of ${fixture.event.completed} queued` }).waitFor();
  t.match(await page.locator('#notice').textContent(), fixture.delivery.dead);
  await waitFor(
    'the row to show pending',
    async () => (await row.locator('[data-figure="delivery.status"]').textContent()) === 'pending',
  );
  const [delivery] = await service.database.rows(`select status from webhook_deliveries where id = $1`, [
    fixture.delivery.dead,
  ]);
  t.equal(delivery?.status, 'pending', 'the database says pending');
  const listed = await fixture.acme.api.get(`/webhook-subscriptions/${fixture.subscription.healthy}/deliveries`);
  t.match(
    listed.body.data.find((d: { id: string }) => d.id === fixture.delivery.dead),
    { status: 'pending' },
    'and so does the subscription’s delivery list',
  );
  await screenshot(page, 'console', '5-redelivered');
  noPolicyProblems(t, watched);
});

t.test('resolve: an order under review, settled from the overview', async (t) => {
  await page.goto(`${consoleUrl}#/`);
  const row = page.locator(`section.panel:has-text("Under review") tr[data-order-id="${fixture.order.underReview}"]`);
  await row.locator('button[data-action="resolve"]').click();
  const dialog = page.locator('#resolve-dialog');
  await dialog.waitFor({ state: 'visible' });
  t.equal(await page.locator('#resolve-order-id').textContent(), fixture.order.underReview);
  await dialog.locator('input[name="status"][value="COMPLETED"]').check();
  await dialog.locator('#resolve-reference').fill('QRC123');
  await dialog.locator('#resolve-note').fill('Seen as paid on the M-Pesa portal <ok>');
  await screenshot(page, 'console', '6-resolve-dialog');
  await dialog.locator('button[type="submit"]').click();
  await page.locator('#notice', { hasText: `Resolved ${fixture.order.underReview}: COMPLETED` }).waitFor();
  t.ok(await dialog.isHidden(), 'the dialog closed');

  const order = await fixture.kenya.api.get(`/payment-orders/${fixture.order.underReview}`);
  t.equal(order.status, 200);
  t.match(order.body, { status: 'COMPLETED', providerReference: 'QRC123', review: null });
  t.match(order.body.history.at(-1), { to: 'COMPLETED', reason: /Seen as paid on the M-Pesa portal <ok>/ });
  await figureBecomes(page, 'orders.underReview', (await databaseCounts(service)).underReview);
  t.equal(await row.count(), 0, 'gone from the queue');
  await screenshot(page, 'console', '7-resolved');
  noPolicyProblems(t, watched);
});

t.test('resolve: a refusal is shown in the dialog', async (t) => {
  // A final order under review (paid after FAILED) settles at its own status only.
  await service.database.rows(
    `update payment_orders set review_reason = 'paid_after_failure', review_since = now() where id = $1`,
    [fixture.order.failed],
  );
  await service.database.rows(
    `insert into payment_order_reviews (id, order_id, reason, detail) values ('rev_console_1', $1, 'paid_after_failure', 'a callback said paid')`,
    [fixture.order.failed],
  );
  const row = page.locator(`tr[data-order-id="${fixture.order.failed}"]`);
  await row.locator('button[data-action="resolve"]').click();
  const dialog = page.locator('#resolve-dialog');
  t.ok(await dialog.locator('input[value="FAILED"]').isChecked(), 'its own status preselected');
  await dialog.locator('input[value="COMPLETED"]').check();
  await dialog.locator('#resolve-note').fill('trying the wrong status');
  await dialog.locator('button[type="submit"]').click();
  const error = page.locator('#resolve-error');
  await error.waitFor({ state: 'visible' });
  t.match(await error.textContent(), /\(409 order_terminal\)$/);
  await dialog.locator('#resolve-cancel').click();
  t.ok(await dialog.isHidden());
  const order = await fixture.acme.api.get(`/payment-orders/${fixture.order.failed}`);
  t.match(order.body, { status: 'FAILED', review: { reason: 'paid_after_failure' } }, 'nothing changed');
  noPolicyProblems(t, watched);
});

t.test('re-enable: a disabled subscription, from the overview', async (t) => {
  const before = await fixture.kenya.api.get(`/webhook-subscriptions/${fixture.subscription.disabled}`);
  t.match(before.body, { enabled: false, disabledReason: 'the endpoint answered 410 Gone' });
  const row = page.locator(`tr[data-subscription-id="${fixture.subscription.disabled}"]`);
  t.match(await row.textContent(), /disabled: the endpoint answered 410 Gone/);
  await screenshot(page, 'console', '8-subscriptions');
  await row.locator('button[data-action="enable"]').click();
  await page
    .locator('#notice', { hasText: `Subscription ${fixture.subscription.disabled} is enabled again.` })
    .waitFor();
  const after = await fixture.kenya.api.get(`/webhook-subscriptions/${fixture.subscription.disabled}`);
  t.match(after.body, { enabled: true, disabledReason: null });
  await waitFor('the row to go', async () => (await row.count()) === 0);
  noPolicyProblems(t, watched);
});

t.test('forget key: back to the key form, the key gone from the tab', async (t) => {
  await page.locator('#forget-key').click();
  await page.locator('#key-form').waitFor({ state: 'visible' });
  t.equal(await page.evaluate(() => sessionStorage.length), 0);
  noPolicyProblems(t, watched);
});
