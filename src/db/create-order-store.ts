// The create step on PostgreSQL, with group commit (lib/batcher.ts): concurrent creates are written
// together, one transaction for a batch, and in it one statement for the keys, the orders and their
// first transitions, and one pg-boss insert for their jobs. Each request still gets its own result:
// a batch that fails is written again one request to a transaction, so one bad request fails alone.
//
// Plain node-postgres on one pooled connection, with named (prepared) statements, rather than
// kysely: a create batch is small and frequent, and parsing and planning the statement afresh for
// every batch cost PostgreSQL more than the rows did. pg-boss's own insert goes through the same
// connection and is prepared too (its text is fixed per queue).
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { CreateOrderStore, IdempotencyClaim, OrderToStore } from '../domain/create-payment-order.ts';
import { createBatcher, type Settled } from '../lib/batcher.ts';
import { isDatabaseUnavailable } from './database-errors.ts';

/** What pg-boss runs its SQL through (its `db` option): here, the create transaction's connection. */
export type SqlExecutor = Readonly<{ executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> }>;

/** Writes the processing jobs of the given orders in the given transaction (pg-boss `insert(..., { db })`). */
export type EnqueueManyInTransaction = (db: SqlExecutor, orderIds: readonly string[]) => Promise<void>;

export type GroupCommit = Readonly<{
  /** Most creates in one transaction. 1 turns group commit off: a transaction per create. */
  maxBatch: number;
  /** Most create transactions at once (each holds a pool connection). */
  maxInFlight: number;
}>;

export function createOrderStore(
  pool: pg.Pool,
  enqueueMany: EnqueueManyInTransaction,
  group: GroupCommit,
): CreateOrderStore {
  const write = (requests: readonly OrderToStore[]) =>
    inTransaction(pool, (client) => writeCreates(client, enqueueMany, requests));
  const batcher = createBatcher<OrderToStore, IdempotencyClaim>({
    maxBatch: group.maxBatch,
    maxInFlight: group.maxInFlight,
    // Two requests with one key in one INSERT ... ON CONFLICT would be an error; apart, the
    // second waits for the first's commit and reads its answer.
    keyOf,
    run: async (requests) => {
      try {
        return (await write(requests)).map((value) => ({ ok: true, value }));
      } catch (error) {
        // Alone, or the database is gone (each would fail the same way): every request gets this
        // error. The commit of a batch that lost its connection may or may not have happened; the
        // client's retry with the same key tells (a replay, or a first create).
        if (requests.length === 1 || isDatabaseUnavailable(error)) throw error;
        return Promise.all(requests.map((request) => settle(write([request]))));
      }
    },
  });
  return { create: (request) => batcher.submit(request) };
}

async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: Error) => {
      broken = rollbackError; // a connection that cannot roll back is not given back
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Runs pg-boss's statements on `client`, each prepared under a name derived from its text. */
function preparedExecutor(client: pg.PoolClient): SqlExecutor {
  return {
    executeSql: async (text, values = []) => {
      const name = `pgboss_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
      return { rows: (await client.query({ name, text, values })).rows };
    },
  };
}

async function settle(writing: Promise<readonly IdempotencyClaim[]>): Promise<Settled<IdempotencyClaim>> {
  try {
    const [value] = await writing;
    return { ok: true, value: value as IdempotencyClaim };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * One transaction for `requests` (distinct keys): claim the keys and write the claimed ones' orders
 * and first transitions in one statement, read what the other keys hold, then insert the jobs.
 *
 * The key is the lock: an INSERT that meets an uncommitted row with the same key waits for that
 * transaction; if it commits we read its saved response, if it rolls back our insert goes through.
 * An expired key the sweeper has not removed yet is taken over as if it were gone. Keys go in in
 * one order (sorted) so that two batches waiting on each other's keys cannot deadlock.
 */
async function writeCreates(
  client: pg.PoolClient,
  enqueueMany: EnqueueManyInTransaction,
  requests: readonly OrderToStore[],
): Promise<IdempotencyClaim[]> {
  const sorted = [...requests].sort(byKey);
  const column = <T>(pick: (request: OrderToStore) => T) => sorted.map(pick);
  const claimed = await client.query<{ order_id: string }>({
    name: 'create_orders',
    text: CREATE_ORDERS_SQL,
    values: [
      column((r) => r.merchantId),
      column((r) => r.idempotencyKey),
      column((r) => r.fingerprint),
      column((r) => r.ttlHours),
      column((r) => r.response.status),
      column((r) => r.response.body),
      column((r) => r.order.id),
      column((r) => r.order.amount),
      column((r) => r.order.currency),
      column((r) => r.order.provider),
      column((r) => (r.order.paymentMethod === null ? null : JSON.stringify(r.order.paymentMethod))),
      column((r) => r.order.reference),
      column((r) => r.order.description),
      column((r) => JSON.stringify(r.order.metadata)),
      column((r) => r.order.createdAt),
    ],
  });

  const claimedIds = new Set(claimed.rows.map((row) => row.order_id));
  const taken = sorted.filter((request) => !claimedIds.has(request.order.id));
  const held = taken.length > 0 ? await readTaken(client, taken) : new Map<string, IdempotencyClaim>();
  if (claimedIds.size > 0) await enqueueMany(preparedExecutor(client), [...claimedIds]);

  return requests.map((request): IdempotencyClaim => {
    if (claimedIds.has(request.order.id)) return { kind: 'claimed' };
    const claim = held.get(keyOf(request));
    // A key that refused our insert is committed, and a committed key always has its answer.
    if (!claim) throw new Error(`idempotency key row without a response (merchant ${request.merchantId})`);
    return claim;
  });
}

const CREATE_ORDERS_SQL = `
  with input as (
    select * from unnest(
      $1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[],
      $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[]
    ) as t(merchant_id, idempotency_key, fingerprint, ttl_hours, response_status, response_body,
           order_id, amount, currency, provider, payment_method, reference, description, metadata, created_at)
  ),
  claimed as (
    insert into idempotency_keys
      (merchant_id, idempotency_key, request_fingerprint, order_id, response_status, response_body, expires_at)
    select merchant_id, idempotency_key, fingerprint, order_id, response_status, response_body,
           now() + make_interval(hours => ttl_hours)
    from input
    on conflict (merchant_id, idempotency_key) do update set
      request_fingerprint = excluded.request_fingerprint, order_id = excluded.order_id,
      response_status = excluded.response_status, response_body = excluded.response_body,
      created_at = now(), expires_at = excluded.expires_at
    where idempotency_keys.expires_at <= now()
    returning order_id
  ),
  orders as (
    insert into payment_orders (id, merchant_id, status, amount, currency, provider, payment_method, reference,
                                description, metadata, idempotency_key, created_at, updated_at)
    select i.order_id, i.merchant_id, 'PENDING', i.amount, i.currency, i.provider, i.payment_method::jsonb,
           i.reference, i.description, i.metadata::jsonb, i.idempotency_key, i.created_at, i.created_at
    from input i join claimed c on c.order_id = i.order_id
    returning id
  ),
  transitions as (
    insert into payment_order_transitions (order_id, from_status, to_status, reason)
    select id, null, 'PENDING', 'accepted' from orders
  )
  select order_id from claimed`;

/** What the keys that were already taken hold: their fingerprint and saved answer. */
async function readTaken(
  client: pg.PoolClient,
  requests: readonly OrderToStore[],
): Promise<Map<string, IdempotencyClaim>> {
  const rows = await client.query<{
    merchant_id: string;
    idempotency_key: string;
    request_fingerprint: string;
    response_status: number | null;
    response_body: string | null;
  }>({
    name: 'create_orders_read_taken',
    text: `
      select k.merchant_id, k.idempotency_key, k.request_fingerprint, k.response_status, k.response_body
      from idempotency_keys k
      join unnest($1::text[], $2::text[]) as t(merchant_id, idempotency_key)
        on k.merchant_id = t.merchant_id and k.idempotency_key = t.idempotency_key`,
    values: [requests.map((r) => r.merchantId), requests.map((r) => r.idempotencyKey)],
  });
  const held = new Map<string, IdempotencyClaim>();
  for (const row of rows.rows) {
    if (row.response_status === null || row.response_body === null) continue;
    held.set(`${row.merchant_id}\u0000${row.idempotency_key}`, {
      kind: 'taken',
      fingerprint: row.request_fingerprint,
      response: { status: row.response_status, body: row.response_body },
    });
  }
  return held;
}

const keyOf = (request: OrderToStore) => `${request.merchantId}\u0000${request.idempotencyKey}`;

function byKey(a: OrderToStore, b: OrderToStore): number {
  const x = keyOf(a);
  const y = keyOf(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
