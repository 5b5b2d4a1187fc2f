import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import t from 'tap';
import { databaseUrl } from './helpers/database.ts';
import { startProcessing } from './helpers/processing.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { adminUrl, RUN_ID } from './helpers/test-server.ts';
import { waitFor } from './helpers/wait.ts';

// `npm run ops -- ...` as an operator runs it, through npm, against a real gateway (its operator
// API) and the gateway's database (export).
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const { service, sandbox, api, terminal } = await startProcessing(t, {
  WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,0.2,0.2',
  PROVIDER_MAX_ATTEMPTS: '4',
  // A push nobody can ask about is flagged for review after this (5 minutes in production).
  MPESA_PUSH_DEADLINE_SECONDS: '3',
});
const operator = await service.operator('cli-on-call');
const visa = { type: 'card', token: 'pm_card_visa' } as const;
const NO_EVENT = `evt_${'0'.repeat(26)}`;

type Run = Readonly<{ status: number | null; stdout: string; stderr: string }>;

/**
 * The CLI as `npm run ops` runs it (`node src/cli/ops.ts`); through npm itself with `viaNpm`
 * (slower: npm's start-up is most of a run). Asynchronous, like test/keys-cli.test.ts: a
 * synchronous spawn would stop this process's event loop, and the in-process gateway with it.
 */
function ops(args: string[], env: Record<string, string> = {}, viaNpm = false): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      viaNpm ? 'npm' : process.execPath,
      viaNpm ? ['run', '--silent', 'ops', '--', ...args] : ['src/cli/ops.ts', ...args],
      {
        cwd: ROOT,
        env: {
          // Only what the CLI is meant to read: PATH (Node 24 first) and HOME for npm.
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          GATEWAY_URL: service.url,
          OPERATOR_KEY: operator.key,
          DATABASE_URL: service.database.url,
          LOG_LEVEL: 'warn',
          ...env,
        },
        encoding: 'utf8',
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

async function paidOrder(body: Record<string, unknown> = {}) {
  const res = await api.createOrder({ amount: 4200, currency: 'USD', paymentMethod: visa, ...body });
  if (res.status !== 201) throw new Error(`order not created: ${res.text}`);
  return (await terminal(res.body.id)) as { id: string; status: string };
}

async function subscribe(url: string) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url } });
  if (res.status !== 201) throw new Error(`subscription not created: ${res.text}`);
  return res.body as { id: string; secret: string };
}

t.test('npm run ops -- --help prints the usage and exits 0 with no gateway, key or database', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  t.equal(pkg.scripts.ops, 'node src/cli/ops.ts');
  const help = await ops(
    ['--help'],
    { GATEWAY_URL: 'http://127.0.0.1:1', OPERATOR_KEY: '', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    true,
  );
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /^usage: npm run ops -- <command>/);
  for (const part of ['redeliver <evt_id>', 'reenable <whs_id>', 'resolve <po_id>', 'export --from', '--json']) {
    t.ok(help.stdout.includes(part), `mentions ${part}`);
  }
  t.match((await ops(['export', '-h'])).stdout, /^usage:/, '-h after a command too');
});

t.test('bad usage exits 2 with a message, sends nothing', async (t) => {
  const range = ['--from', '2025-01-01', '--to', '2025-02-01'];
  const cases: Array<[string, string[], Record<string, string>?]> = [
    ['no command', []],
    ['an unknown command', ['explode']],
    ['an unknown option', ['reenable', 'whs_x', '--force']],
    ["another command's option", ['reenable', 'whs_x', '--subscription', 'whs_y']],
    ['a missing id', ['redeliver']],
    ['two ids', ['reenable', 'whs_a', 'whs_b']],
    ['a bad status', ['resolve', 'po_x', '--status', 'PAID', '--note', 'x']],
    ['no note', ['resolve', 'po_x', '--status', 'FAILED']],
    ['a blank note', ['resolve', 'po_x', '--status', 'FAILED', '--note', '  ']],
    ['an option without its value', ['redeliver', 'evt_x', '--subscription']],
    ['export without a range', ['export']],
    ['export without --to', ['export', '--from', '2025-01-01']],
    ['not a timestamp', ['export', '--from', 'yesterday', '--to', '2025-01-01']],
    ['a time without a zone', ['export', '--from', '2025-01-01T10:00:00', '--to', '2025-02-01']],
    ['no such day', ['export', '--from', '2025-02-30', '--to', '2025-03-01']],
    ['an empty range', ['export', '--from', '2025-02-01', '--to', '2025-02-01']],
    ['a reversed range', ['export', '--from', '2025-02-01T00:00:00Z', '--to', '2025-02-01T01:00:00+02:00']],
    ['an unknown format', ['export', ...range, '--format', 'xml']],
    ['an unknown table', ['export', ...range, '--what', 'api_keys']],
    ['--json with export', ['export', ...range, '--json']],
    ['no operator key', ['reenable', 'whs_x'], { OPERATOR_KEY: '' }],
    ['a gateway URL that is not http', ['reenable', 'whs_x'], { GATEWAY_URL: 'ftp://127.0.0.1/' }],
    ['a gateway URL that is not a URL', ['reenable', 'whs_x'], { GATEWAY_URL: 'gateway' }],
  ];
  const attempts = await service.database.count('webhook_delivery_attempts');
  for (const [name, args, env] of cases) {
    const res = await ops(args, env);
    t.equal(res.status, 2, `${name}: exit 2`);
    t.ok(res.stderr.trim().length > 0, `${name}: says why (${res.stderr.split('\n')[0]})`);
    t.equal(res.stdout, '', `${name}: nothing on stdout`);
  }
  t.equal(await service.database.count('webhook_delivery_attempts'), attempts);
});

t.test('redeliver: the subscriber gets the event again, with the same webhook-id', async (t) => {
  const subscriber = await startSubscriber(t);
  const subscription = await subscribe(subscriber.url);
  const order = await paidOrder();
  const [event] = await waitFor('the order event', () =>
    service.database.rows<{ id: string }>('select id from outbox_events where order_id = $1', [order.id]),
  );
  const eventId = event?.id as string;
  const sent = () => subscriber.received.filter((r) => r.headers['webhook-id'] === eventId).length;
  await waitFor('the first delivery', () => sent() >= 1 || undefined);

  const res = await ops(['redeliver', eventId], {}, true);
  t.equal(res.status, 0, res.stderr);
  const deliveryId = /^ {2}(whd_\S+) {2}pending$/m.exec(res.stdout)?.[1];
  t.match(res.stdout, new RegExp(`^${eventId} redelivered: 1 delivery\n`));
  t.ok(deliveryId, 'prints the delivery');
  await waitFor('the redelivery', () => sent() >= 2 || undefined);

  const named = await ops(['redeliver', eventId, '--subscription', subscription.id, '--json']);
  t.equal(named.status, 0, named.stderr);
  t.same(JSON.parse(named.stdout), { object: 'list', data: [{ id: deliveryId, status: 'pending' }] });
  await waitFor('the second redelivery', () => sent() >= 3 || undefined);
  const [row] = await service.database.rows('select id from webhook_deliveries where event_id = $1', [eventId]);
  t.equal(row?.id, deliveryId, 'the one delivery of the event to the subscription');

  const missing = await ops(['redeliver', NO_EVENT]);
  t.equal(missing.status, 1, 'an unknown event: refused');
  t.match(missing.stderr, /^refused: resource_missing \(HTTP 404\): .*evt_0{26}/);
  t.equal(missing.stdout, '');
  const missingJson = await ops(['redeliver', NO_EVENT, '--json']);
  t.equal(missingJson.status, 1);
  t.match(JSON.parse(missingJson.stdout), { status: 404, code: 'resource_missing', detail: String });
});

t.test('reenable: a subscription disabled by a 410 is on again', async (t) => {
  const gone = await startSubscriber(t, 410);
  const subscription = await subscribe(gone.url);
  await paidOrder();
  await waitFor('the subscription disabled by the 410', async () => {
    const body = (await api.get(`/webhook-subscriptions/${subscription.id}`)).body;
    return body.enabled === false || undefined;
  });
  const res = await ops(['reenable', subscription.id]);
  t.equal(res.status, 0, res.stderr);
  const [row] = await service.database.rows(
    'select merchant_id, enabled, disabled_reason from webhook_subscriptions where id = $1',
    [subscription.id],
  );
  t.same(row, { merchant_id: row?.merchant_id, enabled: true, disabled_reason: null });
  t.equal(res.stdout, `${subscription.id} enabled (merchant ${row?.merchant_id}): ${gone.url}\n`);
  t.match((await api.get(`/webhook-subscriptions/${subscription.id}`)).body, { enabled: true, disabledReason: null });

  const asJson = await ops(['reenable', subscription.id, '--json']);
  t.equal(asJson.status, 0);
  t.match(JSON.parse(asJson.stdout), { id: subscription.id, enabled: true, merchantId: row?.merchant_id });

  const missing = await ops(['reenable', `whs_${'0'.repeat(26)}`]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /^refused: resource_missing \(HTTP 404\)/);
  const merchant = await service.merchant();
  const notOperator = await ops(['reenable', subscription.id], { OPERATOR_KEY: merchant.key });
  t.equal(notOperator.status, 1, 'a merchant key is refused');
  t.match(notOperator.stderr, /^refused: operator_key_required \(HTTP 403\)/);
  const unreachable = await ops(['reenable', subscription.id], { GATEWAY_URL: 'http://127.0.0.1:9' });
  t.equal(unreachable.status, 1, 'no gateway there');
  t.match(unreachable.stderr, /cannot reach the gateway at http:\/\/127\.0\.0\.1:9/);
});

t.test('resolve: an order under review is settled, with the note in its history', async (t) => {
  await sandbox.switches({ timeoutNext: 1, faultPaths: ['/mpesa/stkpush'] });
  const created = await api.createOrder({
    amount: 10100,
    currency: 'KES',
    paymentMethod: { type: 'mpesa', phone: '254708374149' },
  });
  const id = created.body.id as string;
  // Under review, and no provider call left in flight or scheduled (else the gateway answers order_busy).
  await waitFor('the order under review', async () => {
    const order = (await api.get(`/payment-orders/${id}`)).body;
    return order.review !== null && order.nextAttemptAt === null ? order : undefined;
  });

  const resolve = ['resolve', id, '--status', 'COMPLETED', '--note', 'seen on the M-Pesa portal'];
  // The review is flagged by the step that made the call; until that step lets go of the order the
  // gateway answers order_busy ("try again in a few seconds"), and so does the CLI (exit 1).
  const res = await waitFor('the resolution', async () => {
    const run = await ops([...resolve, '--provider-reference', 'QCLI000001']);
    return run.stderr.includes('order_busy') ? undefined : run;
  });
  t.equal(res.status, 0, res.stderr);
  t.equal(res.stdout, `${id} resolved: COMPLETED (provider reference QCLI000001)\n`);
  const order = (await api.get(`/payment-orders/${id}`)).body;
  t.match(order, { status: 'COMPLETED', providerReference: 'QCLI000001', review: null });
  t.match(order.history.at(-1), {
    to: 'COMPLETED',
    reason: 'resolved by operator cli-on-call: seen on the M-Pesa portal',
  });

  const again = await ops(['resolve', id, '--status', 'FAILED', '--note', 'changed my mind', '--json']);
  t.equal(again.status, 1, 'not under review any more');
  t.match(JSON.parse(again.stdout), { status: 409, code: 'order_not_under_review' });
  t.match(again.stderr, /^refused: order_not_under_review \(HTTP 409\)/);
});

/** RFC 4180 as PostgreSQL writes it: "" inside quotes is a quote; an unquoted empty field is NULL. */
function parseCsv(text: string): Array<Array<string | null>> {
  const rows: Array<Array<string | null>> = [];
  let row: Array<string | null> = [];
  let i = 0;
  while (i < text.length) {
    let value: string | null;
    if (text[i] === '"') {
      let end = i + 1;
      value = '';
      for (;;) {
        const quote = text.indexOf('"', end);
        if (quote < 0) throw new Error('unterminated quote');
        value += text.slice(end, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          end = quote + 2;
        } else {
          i = quote + 1;
          break;
        }
      }
    } else {
      const end = text.slice(i).search(/[,\n]/);
      const raw = end < 0 ? text.slice(i) : text.slice(i, i + end);
      value = raw === '' ? null : raw;
      i += raw.length;
    }
    row.push(value);
    if (text[i] === ',') i++;
    else {
      rows.push(row);
      row = [];
      i++;
    }
  }
  return rows;
}

const asObjects = (table: Array<Array<string | null>>) => {
  const [header, ...rows] = table;
  return rows.map((row) => Object.fromEntries((header as string[]).map((name, i) => [name, row[i]])));
};

/** A PostgreSQL timestamptz as COPY writes it under datestyle ISO and time zone UTC, as epoch ms. */
const csvTime = (text: string | null | undefined) =>
  text ? Date.parse(`${text.replace(' ', 'T')}`.replace(/\+00$/, 'Z')) : null;

t.test('export: csv and ndjson of orders, transitions and attempts, exactly the rows', async (t) => {
  // Text that COPY's own formats would alter: backslashes, quotes, a comma, line breaks, tabs,
  // control characters (the ndjson quote and delimiter among them), non-ASCII and U+2028.
  const tricky = 'back\\slash \\n "quoted", \'single\'\nsecond line\r\n\ttab \u0001\u0002\u001f é 漢字 🎉 \u2028 end\\';
  const orders = [
    await paidOrder({ description: tricky, reference: 'ref,with"quote', metadata: { note: tricky, k: 'v' } }),
    await paidOrder({ description: '', metadata: {} }),
    await paidOrder({ amount: 99_999_999, currency: 'JPY', paymentMethod: visa }),
    await paidOrder({ paymentMethod: { type: 'card', token: 'pm_card_chargeDeclined' } }),
  ];
  const [first] = await service.database.rows<{ from: string; to: string }>(
    `select to_json(min(created_at))#>>'{}' as from, to_json(max(created_at) + interval '1 microsecond')#>>'{}' as to
       from payment_orders where id = any($1)`,
    [orders.map((o) => o.id)],
  );
  const from = first?.from as string;
  const to = first?.to as string;
  const range = ['--from', from, '--to', to];
  const inRange = (table: string, createdAt: string) =>
    service.database.rows(
      `select * from ${table} where ${createdAt} >= $1::timestamptz and ${createdAt} < $2::timestamptz
        order by ${createdAt}, id`,
      [from, to],
    );
  const expectedOrders = await inRange('payment_orders', 'created_at');
  t.same(
    expectedOrders.map((o) => o.id),
    orders.map((o) => o.id),
    'the range holds exactly these orders',
  );

  // Orders, csv.
  const csv = await ops(['export', ...range]);
  t.equal(csv.status, 0, csv.stderr);
  t.match(csv.stderr, new RegExp(`exported ${orders.length} orders`));
  const table = parseCsv(csv.stdout);
  t.same(table[0], [
    'id',
    'merchant_id',
    'status',
    'amount',
    'currency',
    'provider',
    'payment_method_type',
    'reference',
    'description',
    'metadata',
    'idempotency_key',
    'provider_reference',
    'failure_code',
    'failure_message',
    'review_reason',
    'review_since',
    'reconciling_since',
    'next_attempt_at',
    'created_at',
    'updated_at',
  ]);
  const csvOrders = asObjects(table);
  t.equal(csvOrders.length, expectedOrders.length, 'one line per order');
  csvOrders.forEach((row, i) => {
    const db = expectedOrders[i] as Record<string, any>;
    t.same(
      {
        id: row.id,
        merchant_id: row.merchant_id,
        status: row.status,
        amount: row.amount,
        currency: row.currency,
        payment_method_type: row.payment_method_type,
        reference: row.reference,
        description: row.description,
        metadata: JSON.parse(row.metadata as string),
        idempotency_key: row.idempotency_key,
        provider_reference: row.provider_reference,
        failure_code: row.failure_code,
        created_at: csvTime(row.created_at),
        updated_at: csvTime(row.updated_at),
      },
      {
        id: db.id,
        merchant_id: db.merchant_id,
        status: db.status,
        amount: db.amount,
        currency: db.currency,
        payment_method_type: 'card',
        reference: db.reference,
        description: db.description,
        metadata: db.metadata,
        idempotency_key: db.idempotency_key,
        provider_reference: db.provider_reference,
        failure_code: db.failure_code,
        created_at: db.created_at.getTime(),
        updated_at: db.updated_at.getTime(),
      },
      `csv order ${i}`,
    );
  });
  t.equal(csvOrders[0]?.description, tricky, 'the tricky description round-trips through csv');
  t.equal(csvOrders[1]?.description, '', 'an empty description stays empty');
  t.equal(csvOrders[2]?.description, null, 'and none stays NULL');
  t.equal(csvOrders[2]?.amount, '99999999');

  // Orders, ndjson: each line exactly one JSON object.
  const ndjson = await ops(['export', ...range, '--format', 'ndjson']);
  t.equal(ndjson.status, 0, ndjson.stderr);
  t.ok(ndjson.stdout.endsWith('}\n'));
  const lines = ndjson.stdout.slice(0, -1).split('\n');
  t.equal(lines.length, expectedOrders.length, 'one line per order');
  const jsonOrders = lines.map((line) => JSON.parse(line));
  jsonOrders.forEach((row, i) => {
    const db = expectedOrders[i] as Record<string, any>;
    t.same(
      { ...row, created_at: Date.parse(row.created_at), updated_at: Date.parse(row.updated_at) },
      {
        id: db.id,
        merchant_id: db.merchant_id,
        status: db.status,
        amount: Number(db.amount),
        currency: db.currency,
        provider: db.provider,
        payment_method_type: 'card',
        reference: db.reference,
        description: db.description,
        metadata: db.metadata,
        idempotency_key: db.idempotency_key,
        provider_reference: db.provider_reference,
        failure_code: db.failure_code,
        failure_message: db.failure_message,
        review_reason: null,
        review_since: null,
        reconciling_since: null,
        next_attempt_at: db.next_attempt_at?.toISOString() ?? null,
        created_at: db.created_at.getTime(),
        updated_at: db.updated_at.getTime(),
      },
      `ndjson order ${i}`,
    );
    t.match(row.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/, 'timestamps in UTC');
  });
  t.equal(jsonOrders[0].description, tricky, 'the tricky description round-trips through ndjson');
  t.equal(jsonOrders[0].metadata.note, tricky);
  t.equal(jsonOrders[0].reference, 'ref,with"quote');
  t.equal(jsonOrders[2].amount, 99_999_999, 'amounts are JSON numbers');

  // Transitions and attempts, both formats: the same rows, in order.
  for (const [what, tableName, createdAt] of [
    ['transitions', 'payment_order_transitions', 'created_at'],
    ['attempts', 'provider_attempts', 'started_at'],
  ] as const) {
    const expected = await inRange(tableName, createdAt);
    t.ok(expected.length > 0, `${what}: some to export (${expected.length})`);
    const asCsv = await ops(['export', ...range, '--what', what]);
    t.equal(asCsv.status, 0, asCsv.stderr);
    const rows = asObjects(parseCsv(asCsv.stdout));
    t.same(
      rows.map((r) => r.id),
      expected.map((r) => String(r.id)),
      `${what} csv: the rows`,
    );
    const asJson = await ops(['export', ...range, '--what', what, '--format', 'ndjson']);
    t.equal(asJson.status, 0, asJson.stderr);
    const objects = asJson.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    t.same(
      objects.map((r) => String(r.id)),
      expected.map((r) => String(r.id)),
      `${what} ndjson: the rows`,
    );
    if (what === 'transitions') {
      t.same(
        objects.map((r) => [r.order_id, r.from_status, r.to_status, r.reason]),
        expected.map((r) => [r.order_id, r.from_status, r.to_status, r.reason]),
      );
    } else {
      t.same(
        objects.map((r) => [r.order_id, r.kind, r.outcome, r.http_status, r.attempt_number, Date.parse(r.started_at)]),
        expected.map((r) => [r.order_id, r.kind, r.outcome, r.http_status, r.attempt_number, r.started_at.getTime()]),
      );
      t.same(
        rows.map((r) => [r.outcome, csvTime(r.started_at)]),
        expected.map((r) => [r.outcome, r.started_at.getTime()]),
      );
    }
  }

  // An empty range: the header alone; nothing at all in ndjson.
  const empty = ['--from', '2001-01-01', '--to', '2001-01-02'];
  t.equal(
    (await ops(['export', ...empty])).stdout.split('\n')[0],
    'id,merchant_id,status,amount,currency,provider,payment_method_type,reference,description,metadata,idempotency_key,provider_reference,failure_code,failure_message,review_reason,review_since,reconciling_since,next_attempt_at,created_at,updated_at',
  );
  t.equal((await ops(['export', ...empty, '--format', 'ndjson'])).stdout, '');
});

t.test('export carries no secrets', async (t) => {
  const mpesa = await api.createOrder({
    amount: 10100,
    currency: 'KES',
    paymentMethod: { type: 'mpesa', phone: '254708374149' },
  });
  const token = await waitFor('the M-Pesa push', async () => {
    const [row] = await service.database.rows('select callback_token from payment_orders where id = $1', [
      mpesa.body.id,
    ]);
    return (row?.callback_token as string | null) ?? undefined;
  });
  const keys = await service.database.rows<{ key_hash: Buffer }>(
    'select key_hash from api_keys union all select key_hash from operator_keys',
  );
  const secrets = [
    token,
    '254708374149',
    'pm_card_visa',
    operator.key,
    ...keys.map((k) => k.key_hash.toString('hex')),
    ...keys.map((k) => k.key_hash.toString('base64')),
  ];
  const range = ['--from', '2001-01-01', '--to', '2101-01-01'];
  for (const what of ['orders', 'transitions', 'attempts']) {
    for (const format of ['csv', 'ndjson']) {
      const res = await ops(['export', ...range, '--what', what, '--format', format]);
      t.equal(res.status, 0, res.stderr);
      t.ok(res.stdout.length > 0, `${what} ${format}: exported`);
      t.same(
        secrets.filter((secret) => res.stdout.includes(secret)),
        [],
        `${what} ${format}: no card token, phone, callback token or key`,
      );
    }
  }
  const all = await ops(['export', ...range, '--format', 'ndjson']);
  const row = all.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .find((r) => r.id === mpesa.body.id);
  t.equal(row?.payment_method_type, 'mpesa', 'the payment method type only');
  t.notOk('payment_method' in row || 'callback_token' in row);
});

t.test('an export read only in part (| head) ends quietly and lets go of its connection', async (t) => {
  // Enough rows (about 5 MB of csv) that COPY is still sending when the reader goes away. Written
  // straight into the table: what is exported is the rows, however they came to be.
  const merchant = await service.merchant();
  await service.database.pool.query(
    `insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key,
                                 description, created_at, updated_at)
     select 'po_bulk' || lpad(i::text, 22, '0'), $1, 'PENDING', 100, 'USD', 'stripe', 'bulk-' || i,
            repeat('x', 200), '2030-01-01'::timestamptz + i * interval '1 ms', '2030-01-01'::timestamptz + i * interval '1 ms'
       from generate_series(1, 20000) i`,
    [merchant.id],
  );
  const child = execFile(process.execPath, ['src/cli/ops.ts', 'export', '--from', '2030-01-01', '--to', '2030-01-02'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: service.database.url, LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  let first = '';
  child.stdout?.once('data', (chunk) => {
    first = String(chunk);
    child.stdout?.destroy();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.match(first, /^id,merchant_id,/, 'the reader got the start');
  t.equal(code, 0, 'exit 0');
  t.equal(stderr, '', 'nothing to complain about');
  await waitFor('the CLI connections to close', async () => {
    const n = await service.database.count('pg_stat_activity', "application_name = 'payment-order-gateway:cli'");
    return n === 0 || undefined;
  });
});

t.test('export reads: it never migrates the database it exports from', async (t) => {
  // An empty database stands for one at an older schema: an export from this checkout must not
  // apply migrations to it (in production that would be a schema change from a read).
  const name = `pogt_${RUN_ID}_export_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  t.teardown(async () => {
    await admin.query(`drop database if exists "${name}" with (force)`);
    await admin.end();
  });
  const run = await ops(['export', '--from', '2026-01-01', '--to', '2026-02-01'], { DATABASE_URL: databaseUrl(name) });
  t.equal(run.status, 1, `fails: ${run.stderr.trim().split('\n').at(-1)}`);
  const empty = new pg.Client({ connectionString: databaseUrl(name) });
  await empty.connect();
  const tables = await empty.query("select count(*)::int as n from pg_tables where schemaname = 'public'");
  await empty.end();
  t.equal(tables.rows[0].n, 0, 'no table was created: no migration ran');
});
