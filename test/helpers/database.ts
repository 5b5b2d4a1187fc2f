import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Test } from 'tap';
import { adminUrl, RUN_ID } from './test-server.ts';

/** Test databases are named pogt_<run id>_<...>: the run id tells which tap run owns them. */
export const TEST_DATABASE_PATTERN = /^pogt_(\d+)_/;
const RUN_PREFIX = `pogt_${RUN_ID}_`;
export const TEMPLATE_DATABASE = `${RUN_PREFIX}template`;

export function databaseUrl(name: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

export type TestDatabase = Readonly<{
  name: string;
  url: string;
  pool: pg.Pool;
  /** Rows of one query, for assertions on the tables. */
  rows<R extends Record<string, unknown> = Record<string, any>>(text: string, values?: unknown[]): Promise<R[]>;
  count(table: string, where?: string, values?: unknown[]): Promise<number>;
}>;

/** A fresh, migrated database of this test's own (a clone of the template), dropped at teardown. */
export async function testDatabase(t: Test): Promise<TestDatabase> {
  const name = `${RUN_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(async (admin) => {
    // Two clones of one template at the same instant can collide (55006); one retry settles it.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database "${name}" template "${TEMPLATE_DATABASE}"`);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
      }
    }
  });
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  t.teardown(async () => {
    await pool.end();
    await withAdmin((admin) => admin.query(`drop database if exists "${name}" with (force)`));
  });
  const rows = async (text: string, values: unknown[] = []) => (await pool.query(text, values)).rows;
  return {
    name,
    url,
    pool,
    rows,
    count: async (table, where = 'true', values = []) =>
      Number((await pool.query(`select count(*)::int as n from ${table} where ${where}`, values)).rows[0].n),
  };
}

async function withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}
