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
