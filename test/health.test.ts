import { readFileSync } from 'node:fs';
import pg from 'pg';
import t from 'tap';
import { startTestService } from './helpers/service.ts';
import { adminUrl } from './helpers/test-server.ts';

t.test('/healthz and /readyz answer without credentials', async (t) => {
  const service = await startTestService(t);
  const health = await service.api().get('/healthz');
  t.equal(health.status, 200);
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  t.same(health.body, { status: 'ok', version }, 'the version of package.json (and CHANGELOG.md)');
  t.match(
    readFileSync(new URL('../CHANGELOG.md', import.meta.url), 'utf8'),
    `## ${version} `,
    'the version has its CHANGELOG entry',
  );
  const ready = await service.api().get('/readyz');
  t.equal(ready.status, 200);
  t.same(ready.body, { status: 'ready' });
});

t.test('/readyz answers 503 when the database is unreachable; /healthz stays 200', async (t) => {
  const service = await startTestService(t);
  // Take the database away under the running service.
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`drop database "${service.database.name}" with (force)`);
  await admin.end();

  const ready = await service.api().get('/readyz');
  t.equal(ready.status, 503);
  t.match(ready.headers.get('content-type'), /^application\/problem\+json/);
  t.match(ready.body, { status: 503, code: 'database_unavailable' });
  t.equal((await service.api().get('/healthz')).status, 200);
});

t.test('a request id is echoed back, or made up', async (t) => {
  const service = await startTestService(t);
  const given = await service.api().request('GET', '/healthz', { headers: { 'X-Request-Id': 'abc-123' } });
  t.equal(given.headers.get('x-request-id'), 'abc-123');
  const made = await service.api().get('/healthz');
  t.match(made.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
  const unknown = await service.api().get('/nowhere');
  t.equal(unknown.status, 401, 'unknown routes behind auth ask for credentials first');
});
