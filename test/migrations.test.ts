import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import t, { type Test } from 'tap';
import { migrate, readMigrations } from '../src/db/migrate.ts';
import { EVENT_TYPES } from '../src/domain/event-types.ts';
import { childEnv } from './helpers/child-env.ts';
import { databaseUrl, testDatabase } from './helpers/database.ts';
import { adminUrl } from './helpers/test-server.ts';

/** A fresh, empty database (not a clone of the migrated template). */
async function emptyDatabase(t: Test): Promise<string> {
  const name = `pogt_${process.ppid}_empty_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const a = new pg.Client({ connectionString: adminUrl() });
    await a.connect();
    await a.query(`drop database if exists "${name}" with (force)`);
    await a.end();
  });
  return databaseUrl(name);
}

t.test('migrations are numbered, applied once, each in a transaction', async (t) => {
  const migrations = await readMigrations();
  t.ok(migrations.length >= 1);
  t.same(
    migrations.map((m) => m.version),
    [...migrations.map((m) => m.version)].sort((a, b) => a - b),
  );
  const pool = new pg.Pool({ connectionString: await emptyDatabase(t), max: 4 });
  t.teardown(() => pool.end());
  t.same(
    await migrate(pool),
    migrations.map((m) => m.name),
  );
  t.same(await migrate(pool), [], 'a second run has nothing to do');
  const tables = (await pool.query("select tablename from pg_tables where schemaname = 'public' order by 1")).rows.map(
    (r) => r.tablename,
  );
  t.same(tables, [
    'api_keys',
    'idempotency_keys',
    'merchants',
    'operator_keys',
    'outbox_events',
    'payment_order_reviews',
    'payment_order_transitions',
    'payment_orders',
    'provider_attempts',
    'provider_callbacks',
    'provider_rate_gate',
    'schema_migrations',
    'webhook_deliveries',
    'webhook_delivery_attempts',
    'webhook_subscriptions',
  ]);
});

t.test('two instances migrating at once: both succeed, each migration runs once', async (t) => {
  const url = await emptyDatabase(t);
  const pools = [new pg.Pool({ connectionString: url, max: 2 }), new pg.Pool({ connectionString: url, max: 2 })];
  t.teardown(() => Promise.all(pools.map((p) => p.end())));
  const results = await Promise.all(pools.map((pool) => migrate(pool)));
  const all = (await readMigrations()).map((m) => m.name);
  t.same([...results[0]!, ...results[1]!].sort(), all.sort(), 'between them, every migration applied exactly once');
  const [{ n }] = (await pools[0]!.query('select count(*)::int as n from schema_migrations')).rows;
  t.equal(n, all.length);
});

t.test('a failing migration rolls back completely and stops the run', async (t) => {
  const pool = new pg.Pool({ connectionString: await emptyDatabase(t), max: 2 });
  t.teardown(() => pool.end());
  const broken = [
    { version: 1, name: '001_ok.sql', sql: 'create table a (id int)' },
    { version: 2, name: '002_broken.sql', sql: 'create table b (id int); select 1/0;' },
    { version: 3, name: '003_never.sql', sql: 'create table c (id int)' },
  ];
  await t.rejects(migrate(pool, broken), /002_broken\.sql failed: division by zero/);
  const tables = (await pool.query("select tablename from pg_tables where schemaname = 'public' order by 1")).rows.map(
    (r) => r.tablename,
  );
  t.same(tables, ['a', 'schema_migrations'], 'b rolled back, c never ran');
});

t.test('the appended history cannot be rewritten', async (t) => {
  const pool = new pg.Pool({ connectionString: await emptyDatabase(t), max: 2 });
  t.teardown(() => pool.end());
  await migrate(pool);
  await pool.query("insert into merchants (id, name) values ('mch_1', 'm')");
  await pool.query(`insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
    values ('po_1', 'mch_1', 'PENDING', 100, 'USD', 'stripe', 'k')`);
  await pool.query(
    "insert into payment_order_transitions (order_id, to_status, reason) values ('po_1', 'PENDING', 'accepted')",
  );
  await t.rejects(pool.query("update payment_order_transitions set reason = 'x'"), /append-only/);
  await t.rejects(pool.query('delete from payment_order_transitions'), /append-only/);
});

t.test('npm run migrate applies the migrations to DATABASE_URL', async (t) => {
  const url = await emptyDatabase(t);
  const run = () =>
    spawnSync('npm', ['run', '--silent', 'migrate'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: childEnv({ DATABASE_URL: url, LOG_LEVEL: 'warn' }),
      encoding: 'utf8',
      timeout: 60_000,
    });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  t.match(
    first.stdout,
    /applied: 001_foundation\.sql, 002_processing\.sql, 003_events\.sql, 004_gate_even_spacing\.sql, 005_metrics_indexes\.sql, 006_events_commit_order\.sql, 007_money_rule_review\.sql/,
  );
  const second = run();
  t.equal(second.status, 0);
  t.match(second.stdout, /up to date/);
});

t.test("the outbox's check constraint admits exactly the domain's event types", async (t) => {
  const database = await testDatabase(t);
  const rows = await database.rows<{ definition: string }>(
    `select pg_get_constraintdef(oid) as definition from pg_constraint where conname = 'outbox_events_type_check'`,
  );
  const inConstraint = [...(rows[0]?.definition ?? '').matchAll(/'([a-z_.]+)'/g)].map((match) => match[1]).sort();
  t.same(inConstraint, [...EVENT_TYPES].sort());
});

t.test(
  '011 on existing rows: the old default gets the new event type; the streak state from the attempts',
  async (t) => {
    const pool = new pg.Pool({ connectionString: await emptyDatabase(t), max: 2 });
    t.teardown(() => pool.end());
    const migrations = await readMigrations();
    const before = migrations.filter((m) => m.version < 11);
    t.same(
      migrations.filter((m) => m.version >= 11).map((m) => m.name),
      ['011_webhook_operations.sql'],
    );
    await migrate(pool, before);

    // As the previous release wrote them: a subscription made without `events` has the full list of
    // its day; others chose some types.
    const payments = ['payment_order.completed', 'payment_order.failed', 'payment_order.review_required'];
    await pool.query("insert into merchants (id, name) values ('mch_1', 'm')");
    const subscriptions: Record<string, string[]> = {
      whs_default: payments,
      whs_reordered: [payments[2], payments[0], payments[1]] as string[],
      whs_chosen: ['payment_order.completed', 'payment_order.failed'],
      whs_already: [...payments, 'webhook_subscription.disabled'],
      whs_history: ['payment_order.completed'],
    };
    for (const [id, events] of Object.entries(subscriptions)) {
      await pool.query(
        `insert into webhook_subscriptions (id, merchant_id, url, events, secret) values ($1, 'mch_1', 'https://e.example/h', $2, 'whsec_x')`,
        [id, events],
      );
    }
    await pool.query(`insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
    values ('po_1', 'mch_1', 'COMPLETED', 100, 'USD', 'stripe', 'k')`);
    await pool.query(`insert into outbox_events (id, merchant_id, order_id, type, payload)
    values ('evt_1', 'mch_1', 'po_1', 'payment_order.completed', '{}')`);
    // whs_history's attempts: before the migration (its clock starts at the migration: not counted),
    // and, as if started by an instance of the previous release while the migration runs, after its
    // start (future times stand in for those): counted, by start time.
    const attempts: Array<[string, number]> = [
      ['-6 days', 500],
      ['1 hour', 200],
      ['30 minutes', 500],
      ['2 hours', 500],
      ['3 hours', 503],
    ];
    for (const [i, [at, status]] of attempts.entries()) {
      await pool.query(
        `insert into webhook_deliveries (id, event_id, subscription_id, status) values ($1, 'evt_1', 'whs_history', 'dead')
       on conflict do nothing`,
        ['whd_1'],
      );
      await pool.query(
        `insert into webhook_delivery_attempts (delivery_id, attempt_number, started_at, ended_at, status_code)
       values ('whd_1', $1, now() + $2::interval, now() + $2::interval + interval '1 second', $3)`,
        [i + 1, at, status],
      );
    }

    t.same(await migrate(pool), ['011_webhook_operations.sql']);
    const rows = (
      await pool.query<{ id: string; events: string[] }>('select id, events from webhook_subscriptions order by id')
    ).rows;
    t.same(Object.fromEntries(rows.map((r) => [r.id, r.events])), {
      whs_already: [...payments, 'webhook_subscription.disabled'],
      whs_chosen: ['payment_order.completed', 'payment_order.failed'],
      whs_default: [...payments, 'webhook_subscription.disabled'],
      whs_history: ['payment_order.completed'],
      whs_reordered: [payments[2], payments[0], payments[1], 'webhook_subscription.disabled'],
    });

    const streak = async (id: string) =>
      (
        await pool.query(
          `select failing_since = (select started_at from webhook_delivery_attempts where attempt_number = 4) as since_2h,
                last_success_at = (select started_at from webhook_delivery_attempts where attempt_number = 2) as success_1h,
                last_failure_at = (select started_at from webhook_delivery_attempts where attempt_number = 5) as failure_3h,
                failing_since is null and last_success_at is null and last_failure_at is null as none
           from webhook_subscriptions where id = $1`,
          [id],
        )
      ).rows[0];
    t.same(
      await streak('whs_history'),
      { since_2h: true, success_1h: true, failure_3h: true, none: false },
      'the first failure after the last 2xx; the 30-minute failure is before it',
    );
    t.same((await streak('whs_default')).none, true, 'no attempts: nothing held against it');
    t.same(
      (await pool.query('select event_type from webhook_deliveries')).rows,
      [{ event_type: 'payment_order.completed' }],
      "an existing delivery gets its event's type",
    );
  },
);
