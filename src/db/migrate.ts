import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
const MIGRATION_FILE = /^(\d{3,})_[\w-]+\.sql$/;
// Any constant works; it only has to be the same in every instance. ("pog migrations")
const MIGRATION_LOCK_ID = 7_419_000_001;

export type Migration = Readonly<{ version: number; name: string; sql: string }>;

export async function readMigrations(dir: string = SQL_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((name) => MIGRATION_FILE.test(name)).sort();
  const migrations: Migration[] = [];
  for (const name of names) {
    const version = Number(MIGRATION_FILE.exec(name)?.[1]);
    if (migrations.some((m) => m.version === version)) throw new Error(`two migrations numbered ${version}`);
    migrations.push({ version, name, sql: await readFile(`${dir}${name}`, 'utf8') });
  }
  return migrations;
}

/**
 * Applies the numbered files in sql/ that have not run yet, each in its own transaction. A session
 * advisory lock makes concurrent starts queue up: the second instance waits, then finds nothing
 * left to do. Returns the names applied by this call.
 */
export async function migrate(pool: pg.Pool, migrations?: readonly Migration[]): Promise<string[]> {
  const pending = migrations ?? (await readMigrations());
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    await client.query(`create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
    const done = new Set(
      (await client.query<{ version: number }>('select version from schema_migrations')).rows.map((r) => r.version),
    );
    for (const migration of pending) {
      if (done.has(migration.version)) continue;
      await client.query('begin');
      try {
        await client.query(migration.sql);
        await client.query('insert into schema_migrations (version, name) values ($1, $2)', [
          migration.version,
          migration.name,
        ]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw new Error(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(migration.name);
    }
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => {});
    client.release();
  }
  return applied;
}
