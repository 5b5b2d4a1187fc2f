// Run by the tap `before` script: one PostgreSQL for the whole run, and a migrated template database that
// every test file clones (CREATE DATABASE ... TEMPLATE), so files never share state.
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { freePort } from '../../src/db/embedded-postgres.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createQueues } from '../../src/jobs/queues.ts';
import { PGBOSS_SCHEMA } from '../../src/service.ts';
import { databaseUrl, TEMPLATE_DATABASE, TEST_DATABASE_PATTERN } from './database.ts';
import { adminUrl, isAlive, startEmbeddedTestServer } from './test-server.ts';

if (!process.env.DATABASE_URL) {
  const url = await startEmbeddedTestServer(freePort);
  process.stdout.write(`# embedded PostgreSQL for tests at ${url.replace(/:[^:@/]+@/, ':***@')}\n`);
}
const admin = new pg.Client({ connectionString: adminUrl() });
await admin.connect();
const version = (await admin.query<{ server_version: string }>('show server_version')).rows[0]?.server_version;
process.stdout.write(`# tests run on PostgreSQL ${version}\n`);
// Leftovers of earlier runs that were interrupted (their runner is gone).
for (const { datname } of (await admin.query<{ datname: string }>('select datname from pg_database')).rows) {
  const runId = TEST_DATABASE_PATTERN.exec(datname)?.[1];
  if (runId && !isAlive(Number(runId))) await admin.query(`drop database if exists "${datname}" with (force)`);
}
await admin.query(`drop database if exists "${TEMPLATE_DATABASE}" with (force)`);
await admin.query(`create database "${TEMPLATE_DATABASE}"`);
await admin.end();

const templateUrl = databaseUrl(TEMPLATE_DATABASE);
const pool = new pg.Pool({ connectionString: templateUrl, max: 2 });
await migrate(pool);
await pool.end();
const boss = new PgBoss({
  connectionString: templateUrl,
  schema: PGBOSS_SCHEMA,
  supervise: false,
  schedule: false,
  max: 2,
});
await boss.start();
await createQueues(boss);
await boss.stop({ graceful: false, close: true });
