// Every ready query in sql/audit runs against a database with orders in it (as psql would run it,
// with its -v variables) and finds what the rows say.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { testDatabase } from './helpers/database.ts';

const AUDIT_DIR = fileURLToPath(new URL('../sql/audit/', import.meta.url));

/** psql's variable interpolation: :'name' is a quoted literal, :name the value as written. */
function interpolate(sqlText: string, vars: Record<string, string>): string {
  return sqlText
    .replace(/:'(\w+)'/g, (_, name: string) => `'${(vars[name] ?? '').replaceAll("'", "''")}'`)
    .replace(/(?<!:):(\w+)/g, (whole, name: string) => vars[name] ?? whole);
}

/** The file's statements (separated by a semicolon at the end of a line), comments dropped. */
function statements(file: string): string[] {
  const text = readFileSync(`${AUDIT_DIR}${file}`, 'utf8')
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n');
  return text
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean);
}

const db = await testDatabase(t);
await db.pool.query(`
  insert into merchants (id, name) values ('mch_audit', 'audit');
  insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key, created_at, reconciling_since, review_reason, review_since)
  values ('po_stuck', 'mch_audit', 'PENDING', 100, 'USD', 'stripe', 'k1', now() - interval '1 hour', null, null, null);
  update payment_orders set status = 'PROCESSING', reconciling_since = now(), review_reason = 'push_unconfirmed', review_since = now()
  where id = 'po_stuck';
  insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
  values ('po_done', 'mch_audit', 'PENDING', 200, 'KES', 'mpesa', 'k2');
  update payment_orders set status = 'PROCESSING' where id = 'po_done';
  update payment_orders set status = 'COMPLETED', provider_reference = 'QRCPT00001' where id = 'po_done';
  insert into payment_order_transitions (order_id, from_status, to_status, reason) values
    ('po_stuck', null, 'PENDING', 'accepted'), ('po_stuck', 'PENDING', 'PROCESSING', 'sending to mpesa');
  insert into provider_attempts (order_id, provider, attempt_number, kind, started_at, ended_at, outcome, provider_reference)
  values ('po_stuck', 'mpesa', 1, 'charge', now() - interval '10 minutes', now() - interval '10 minutes', 'unknown', null),
         ('po_done', 'mpesa', 1, 'charge', now() - interval '5 seconds', now() - interval '5 seconds', 'pending', 'ws_CO_1'),
         ('po_done', 'mpesa', 2, 'status', now() - interval '4.5 seconds', now() - interval '4.5 seconds', 'succeeded', 'ws_CO_1');
  insert into payment_order_reviews (id, order_id, reason, detail) values ('rev_1', 'po_stuck', 'push_unconfirmed', 'no callback');
  insert into payment_order_reviews (id, order_id, reason, detail, resolved_at, resolved_by, resolution, note)
  values ('rev_2', 'po_done', 'outcome_unknown', 'slow', now(), 'alice', 'COMPLETED', 'seen on the portal');
  insert into provider_callbacks (order_id, provider, external_id, result_code, outcome, amount, disposition)
  values ('po_stuck', 'mpesa', 'ws_CO_9', '0', 'succeeded', 100, 'unmatched');
`);
const vars = { order_id: 'po_stuck', from: "'2000-01-01'", to: "'2100-01-01'", minutes: '5' };
const run = async (file: string): Promise<Array<Array<Record<string, any>>>> => {
  const results: Array<Array<Record<string, any>>> = [];
  for (const statement of statements(file)) results.push((await db.pool.query(interpolate(statement, vars))).rows);
  return results;
};

t.test('every audit query runs', async (t) => {
  const files = readdirSync(AUDIT_DIR).filter((f) => f.endsWith('.sql'));
  t.ok(files.includes('review-queue.sql'));
  for (const file of files) await t.resolves(run(file), file);
});

t.test('review-queue: the open review with its last call and callback; recent settlements', async (t) => {
  const [queue, settled] = await run('review-queue.sql');
  t.match(queue, [
    {
      order_id: 'po_stuck',
      reason: 'push_unconfirmed',
      last_call: /^charge unknown/,
      last_callback: /^unmatched ws_CO_9/,
    },
  ]);
  t.match(settled, [
    { order_id: 'po_done', resolution: 'COMPLETED', resolved_by: 'alice', note: 'seen on the portal' },
  ]);
});

t.test('order-story: calls, callbacks and reviews in time order', async (t) => {
  const [orders, story] = await run('order-story.sql');
  t.match(orders?.[0], { id: 'po_stuck', review_reason: 'push_unconfirmed' });
  const whats = (story ?? []).map((r) => r.what);
  t.ok(whats.includes('call #1 charge'));
  t.ok(whats.includes('callback unmatched'));
  t.ok(whats.includes('review opened'));
});

t.test('stuck-orders, orders-by-status, provider-calls-per-second', async (t) => {
  t.match((await run('stuck-orders.sql'))[0], [{ id: 'po_stuck', status: 'PROCESSING' }]);
  t.match((await run('orders-by-status.sql'))[0], [
    { status: 'PROCESSING', orders: '1', reconciling: '1' },
    { status: 'COMPLETED', orders: '1' },
  ]);
  const [, windows] = await run('provider-calls-per-second.sql');
  t.match(windows?.[0], { max_starts_in_any_1s_window: '2', calls: '3' });
});
