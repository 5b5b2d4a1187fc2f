import pg from 'pg';
import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { startTestService, validOrder } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { adminUrl } from './helpers/test-server.ts';
import { waitFor } from './helpers/wait.ts';

type Sample = Readonly<{ name: string; labels: Record<string, string>; value: number }>;

/** Prometheus text format → samples (comment lines skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; undefined if none. */
function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  return { res, text, samples: parse(text) };
}

t.test('GET /metrics: HTTP, provider calls, gate waits and webhook attempts, counted by outcome', async (t) => {
  const { service, api, terminal } = await startProcessing(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });
  const subscriber = await startSubscriber(t);
  t.equal((await api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } })).status, 201);
  const paid = await api.createOrder({ ...validOrder, paymentMethod: { type: 'card', token: 'pm_card_visa' } });
  const declined = await api.createOrder({
    ...validOrder,
    paymentMethod: { type: 'card', token: 'pm_card_chargeDeclined' },
  });
  t.equal((await terminal(paid.body.id)).status, 'COMPLETED');
  t.equal((await terminal(declined.body.id)).status, 'FAILED');
  await waitFor('both webhooks delivered and counted', async () => {
    const { samples } = await scrape(service.url);
    return (sampleValue(samples, 'webhook_delivery_attempts_total', { result: 'delivered' }) ?? 0) >= 2 || undefined;
  });

  const { res, text, samples } = await scrape(service.url);
  t.equal(res.status, 200, 'no API key needed');
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  t.equal(sampleValue(samples, 'http_requests_total', { method: 'POST', route: '/payment-orders', status: '201' }), 2);
  t.ok(
    (sampleValue(samples, 'http_requests_total', { method: 'GET', route: '/payment-orders/:id', status: '200' }) ??
      0) >= 2,
    'GETs are counted under the route pattern',
  );
  t.equal(sampleValue(samples, 'http_request_duration_seconds_count', { method: 'POST', route: '/payment-orders' }), 2);
  t.equal(
    sampleValue(samples, 'provider_calls_total', { provider: 'stripe', kind: 'charge', outcome: 'succeeded' }),
    1,
  );
  t.equal(sampleValue(samples, 'provider_calls_total', { provider: 'stripe', kind: 'charge', outcome: 'declined' }), 1);
  t.equal(sampleValue(samples, 'provider_call_duration_seconds_count', { provider: 'stripe', kind: 'charge' }), 2);
  t.equal(sampleValue(samples, 'provider_rate_gate_wait_seconds_count', { provider: 'stripe' }), 2);
  t.equal(sampleValue(samples, 'payment_orders_in_flight', { status: 'PENDING' }), 0);
  t.equal(sampleValue(samples, 'payment_orders_in_flight', { status: 'PROCESSING' }), 0);
  t.equal(sampleValue(samples, 'outbox_events_unrelayed'), 0);
  t.equal(sampleValue(samples, 'outbox_oldest_unrelayed_seconds'), 0);
  t.equal(sampleValue(samples, 'webhook_deliveries_pending'), 0);
  t.equal(sampleValue(samples, 'outbox_events_unpublished'), undefined, 'no Kafka, no unpublished count');
  t.equal(sampleValue(samples, 'payment_gateway_database_up'), 1);
  t.ok(
    sampleValue(samples, 'pgboss_jobs', { queue: 'payment-orders.process', state: 'queued' }) !== undefined,
    'queue depths',
  );
  t.ok(sampleValue(samples, 'process_cpu_seconds_total') !== undefined, "Node's process metrics");
  t.notOk(text.includes(paid.body.id), 'no order ids in labels');
  t.notOk(text.includes(service.database.url), 'no connection strings');
});

t.test('GET /metrics: the database-wide backlogs, as the database has them', async (t) => {
  // No workers and no relay: what is created stays where it is.
  const service = await startTestService(t, { WEBHOOK_CONCURRENCY: '0' });
  const { api, key } = await service.merchant();
  for (let i = 0; i < 3; i++) t.equal((await api.createOrder(validOrder, `backlog-${i}`)).status, 201);
  // One order finished by hand, its event left for a relay that is not running.
  const [order] = await service.database.rows('select id, merchant_id from payment_orders limit 1');
  await service.database.pool.query("update payment_orders set status = 'PROCESSING' where id = $1", [order?.id]);
  await service.database.pool.query(
    `insert into outbox_events (id, merchant_id, order_id, type, payload, created_at)
     values ('evt_metrics_1', $1, $2, 'payment_order.completed', '{}', now() - interval '90 seconds')`,
    [order?.merchant_id, order?.id],
  );
  const { samples, text } = await scrape(service.url);
  t.equal(sampleValue(samples, 'payment_orders_in_flight', { status: 'PENDING' }), 2);
  t.equal(sampleValue(samples, 'payment_orders_in_flight', { status: 'PROCESSING' }), 1);
  t.equal(sampleValue(samples, 'outbox_events_unrelayed'), 1);
  t.ok((sampleValue(samples, 'outbox_oldest_unrelayed_seconds') ?? 0) >= 90, 'the oldest unrelayed event is 90 s old');
  t.notOk(text.includes(key), 'no API keys');

  // The database goes away: the instance's own figures are still served, and say so.
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`drop database "${service.database.name}" with (force)`);
  await admin.end();
  const down = await waitFor('a scrape that sees the database down', async () => {
    const { res, samples } = await scrape(service.url);
    return sampleValue(samples, 'payment_gateway_database_up') === 0 ? { res, samples } : undefined;
  });
  t.equal(down.res.status, 200);
  t.ok(
    (sampleValue(down.samples, 'http_requests_total', { method: 'POST', route: '/payment-orders', status: '201' }) ??
      0) >= 3,
  );
});
