import t from 'tap';
import { createBatcher, type Settled } from '../src/lib/batcher.ts';

/** A batcher whose batches wait until the test lets them finish, recording what each held. */
function gatedBatcher(maxBatch: number, maxInFlight: number) {
  const batches: string[][] = [];
  const releases: Array<() => void> = [];
  const batcher = createBatcher<string, string>({
    maxBatch,
    maxInFlight,
    keyOf: (item) => item.split(':')[0] as string,
    run: async (items) => {
      batches.push([...items]);
      await new Promise<void>((resolve) => releases.push(resolve));
      return items.map(
        (item): Settled<string> =>
          item.endsWith('!') ? { ok: false, error: new Error(`refused ${item}`) } : { ok: true, value: `done ${item}` },
      );
    },
  });
  const releaseAll = () => {
    for (const release of releases.splice(0)) release();
  };
  return { batcher, batches, releaseAll };
}

const settle = (promise: Promise<string>) =>
  promise.then(
    (value) => ({ value }),
    (error: Error) => ({ error: error.message }),
  );

t.test('a lone item goes at once, in a batch of its own', async (t) => {
  const { batcher, batches, releaseAll } = gatedBatcher(10, 2);
  const one = batcher.submit('a');
  t.same(batches, [['a']], 'started before anything else queued');
  t.equal(batcher.inFlight, 1);
  releaseAll();
  t.equal(await one, 'done a');
});

t.test('items queue only while every slot is busy; the next batch takes what queued', async (t) => {
  const { batcher, batches, releaseAll } = gatedBatcher(3, 1);
  const all = ['a', 'b', 'c', 'd', 'e', 'f'].map((item) => settle(batcher.submit(item)));
  t.same(batches, [['a']]);
  t.equal(batcher.queued, 5);
  releaseAll();
  await new Promise((resolve) => setImmediate(resolve));
  t.same(batches, [['a'], ['b', 'c', 'd']], 'at most maxBatch');
  releaseAll();
  await new Promise((resolve) => setImmediate(resolve));
  t.same(batches.at(-1), ['e', 'f']);
  releaseAll();
  t.same(
    await Promise.all(all),
    ['a', 'b', 'c', 'd', 'e', 'f'].map((item) => ({ value: `done ${item}` })),
  );
  t.equal(batcher.inFlight, 0);
});

t.test('never more than maxInFlight batches at once', async (t) => {
  const { batcher, batches, releaseAll } = gatedBatcher(2, 2);
  const all = Array.from({ length: 9 }, (_, i) => settle(batcher.submit(`k${i}`)));
  t.equal(batches.length, 2);
  t.equal(batcher.inFlight, 2);
  while (batcher.inFlight > 0) {
    releaseAll();
    await new Promise((resolve) => setImmediate(resolve));
    t.ok(batcher.inFlight <= 2);
  }
  t.equal((await Promise.all(all)).length, 9);
  t.same(batches.flat().sort(), Array.from({ length: 9 }, (_, i) => `k${i}`).sort(), 'each item in exactly one batch');
});

t.test('items with one key never share a batch', async (t) => {
  const { batcher, batches, releaseAll } = gatedBatcher(10, 1);
  const all = ['x:1', 'y:1', 'x:2', 'x:3', 'z:1'].map((item) => settle(batcher.submit(item)));
  while (batches.flat().length < 5) {
    releaseAll();
    await new Promise((resolve) => setImmediate(resolve));
  }
  releaseAll();
  await Promise.all(all);
  t.same(batches, [['x:1'], ['y:1', 'x:2', 'z:1'], ['x:3']]);
  for (const batch of batches) {
    const keys = batch.map((item) => item.split(':')[0]);
    t.equal(new Set(keys).size, keys.length, `no key twice in ${batch.join(',')}`);
  }
});

t.test('each item gets its own result; a throw fails every item of its batch only', async (t) => {
  const { batcher, releaseAll } = gatedBatcher(10, 1);
  const first = settle(batcher.submit('a'));
  const rest = ['b', 'c!', 'd'].map((item) => settle(batcher.submit(item)));
  releaseAll();
  await first;
  await new Promise((resolve) => setImmediate(resolve));
  releaseAll();
  t.same(await Promise.all(rest), [{ value: 'done b' }, { error: 'refused c!' }, { value: 'done d' }]);

  let calls = 0;
  const throwing = createBatcher<string, string>({
    maxBatch: 10,
    maxInFlight: 1,
    keyOf: (item) => item,
    run: async (items) => {
      calls++;
      if (calls === 1) return items.map((item) => ({ ok: true, value: item }));
      throw new Error('connection lost');
    },
  });
  const results = await Promise.all(['p', 'q', 'r'].map((item) => settle(throwing.submit(item))));
  t.same(results, [{ value: 'p' }, { error: 'connection lost' }, { error: 'connection lost' }]);
  t.same(await settle(throwing.submit('s')), { error: 'connection lost' }, 'and the batcher goes on');

  const short = createBatcher<string, string>({
    maxBatch: 10,
    maxInFlight: 1,
    keyOf: (item) => item,
    run: async () => [],
  });
  t.match(await settle(short.submit('t')), { error: /returned 0 results/ }, 'a missing result is an error, not a hang');
});
