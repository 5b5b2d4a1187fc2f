import t from 'tap';
import { cachedLookup } from '../src/lib/cached-lookup.ts';

/** A lookup over a table the test changes, on a clock the test moves. */
function setup(ttlMs: number, maxEntries?: number) {
  let clock = 0;
  const table = new Map<string, string>([['k1', 'merchant-1']]);
  let calls = 0;
  let lookupTakesMs = 0;
  const lookup = cachedLookup(
    async (key: string) => {
      calls++;
      const value = table.get(key) ?? null;
      clock += lookupTakesMs; // e.g. waiting for a pool connection
      return value;
    },
    (key) => key,
    { ttlMs, now: () => clock, ...(maxEntries ? { maxEntries } : {}) },
  );
  return {
    lookup,
    table,
    calls: () => calls,
    advance: (ms: number) => {
      clock += ms;
    },
    slowLookups: (ms: number) => {
      lookupTakesMs = ms;
    },
  };
}

t.test('a found answer is kept for ttlMs, then looked up again', async (t) => {
  const s = setup(5_000);
  t.equal(await s.lookup('k1'), 'merchant-1');
  s.table.delete('k1'); // revoked
  s.advance(4_999);
  t.equal(await s.lookup('k1'), 'merchant-1', 'still cached');
  t.equal(s.calls(), 1);
  s.advance(1);
  t.equal(await s.lookup('k1'), null, 'refused once ttlMs has passed');
  t.equal(s.calls(), 2);
});

t.test('misses are never kept: a new key works at once', async (t) => {
  const s = setup(5_000);
  t.equal(await s.lookup('k2'), null);
  s.table.set('k2', 'merchant-2');
  t.equal(await s.lookup('k2'), 'merchant-2');
});

t.test('the age counts from before the lookup: a slow lookup does not stretch the bound', async (t) => {
  const s = setup(5_000);
  s.slowLookups(3_000);
  t.equal(await s.lookup('k1'), 'merchant-1'); // asked at 0, answered at 3,000
  s.slowLookups(0);
  s.table.delete('k1');
  s.advance(2_000); // 5,000 after it was asked
  t.equal(await s.lookup('k1'), null, 'revoked key refused ttlMs after the lookup began');
});

t.test('ttlMs 0 looks up every time; the cache holds at most maxEntries', async (t) => {
  const off = setup(0);
  await off.lookup('k1');
  await off.lookup('k1');
  t.equal(off.calls(), 2);
  const small = setup(60_000, 2);
  for (const key of ['a', 'b', 'c']) small.table.set(key, key);
  await small.lookup('a');
  await small.lookup('b');
  await small.lookup('c'); // evicts a
  await small.lookup('b');
  t.equal(small.calls(), 3, 'b still cached');
  await small.lookup('a');
  t.equal(small.calls(), 4, 'a was evicted first');
});
