// Static checks of the deployment files (Dockerfile, .dockerignore, compose.yaml): no Docker needed.
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';

type Instruction = Readonly<{ keyword: string; args: string }>;

type ComposeService = {
  image?: string;
  build?: string | { context?: string };
  environment?: Record<string, string | number | boolean | null> | string[];
  healthcheck?: { test?: string | string[] };
  volumes?: Array<string | { source?: string; target?: string }>;
  deploy?: { replicas?: number };
  container_name?: string;
  depends_on?: string[] | Record<string, { condition?: string }>;
  ports?: Array<string | { target: number; published?: string | number }>;
  profiles?: string[];
  command?: string | string[];
};
type ComposeFile = { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };

/** Dockerfile instructions in order: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const match = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(full);
    if (!match) throw new Error(`unparseable Dockerfile line: ${full}`);
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim() });
  }
  if (pending.trim() !== '') throw new Error('Dockerfile ends inside a line continuation');
  return instructions;
}

/** `KEY=value KEY2="v 2"` (or the legacy `KEY value`) of an ENV instruction. */
function envNames(args: string): string[] {
  if (!args.includes('=')) return [args.split(/\s+/)[0] ?? ''];
  return [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)/g)].map((m) => m[1] ?? '');
}

/** The environment of a compose service, in either the map or the `- KEY=value` list form. */
function composeEnvironment(service: ComposeService): Record<string, string | null> {
  const env = service.environment;
  if (env === undefined || env === null) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const at = entry.indexOf('=');
        return at === -1 ? [entry, null] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? null : String(value)]));
}

/** The keys of the zod schema in src/config/config.ts (`const envSchema = z.object({ ... });`). */
function configKeys(): Set<string> {
  const text = readFileSync('src/config/config.ts', 'utf8');
  const start = text.indexOf('const envSchema = z.object({');
  if (start === -1) throw new Error('envSchema not found in src/config/config.ts');
  const end = text.indexOf('\n});', start);
  if (end === -1) throw new Error('end of envSchema not found in src/config/config.ts');
  const body = text.slice(start, end);
  // Top-level keys only: two-space indent, upper-case name, then a colon.
  return new Set([...body.matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1] ?? ''));
}

const known = configKeys();

t.test('the config schema keys are found (guards the parsing below)', async (t) => {
  for (const key of ['PORT', 'HOST', 'DATABASE_URL', 'LOG_LEVEL', 'DATA_DIR']) t.ok(known.has(key), key);
  t.ok(known.has('KAFKA_BROKERS'), 'KAFKA_BROKERS is configurable');
});

t.test('Dockerfile', async (t) => {
  const instructions = parseDockerfile(readFileSync('Dockerfile', 'utf8'));
  const all = (keyword: string) => instructions.filter((i) => i.keyword === keyword);
  const froms = all('FROM');
  t.equal(froms.length, 1, 'one stage');
  t.match(froms[0]?.args, /^node:24-slim(@sha256:[0-9a-f]{64})?$/, 'FROM node:24-slim');

  const users = all('USER');
  t.ok(users.length > 0, 'has a USER');
  const finalUser = users.at(-1)?.args.split(':')[0];
  t.ok(finalUser && !['root', '0'].includes(finalUser), `runs as a non-root user (${finalUser})`);
  t.equal(finalUser, 'node', 'the official image’s node user');
  const userAt = instructions.lastIndexOf(users.at(-1) as Instruction);
  t.notOk(
    instructions.slice(userAt + 1).some((i) => i.keyword === 'USER'),
    'no USER after the last one switches back',
  );

  const runs = all('RUN').map((i) => i.args);
  t.ok(
    runs.some((run) => /\bnpm ci\b[^&;|]*--omit=dev\b/.test(run)),
    'installs with npm ci --omit=dev',
  );
  t.notOk(
    runs.some((run) => /\bnpm (install|i)\b/.test(run)),
    'no npm install (lockfile only)',
  );
  t.notOk(
    runs.some((run) => /\bnpm ci\b(?![^&;|]*--omit=dev)/.test(run)),
    'every npm ci omits dev dependencies',
  );

  const copies = all('COPY').map((i) => i.args.split(/\s+/).filter((word) => !word.startsWith('--')));
  const sources = copies.flatMap((words) => words.slice(0, -1)).map((s) => s.replace(/^\.\//, '').replace(/\/$/, ''));
  for (const needed of ['package.json', 'package-lock.json', 'src', 'sql', 'docs'])
    t.ok(sources.includes(needed), `copies ${needed}`);
  t.notOk(sources.includes('.'), 'does not copy the whole context');
  // sql/ must land at ../../sql/ relative to src/db/migrate.ts, i.e. beside src/.
  const workdir = all('WORKDIR').at(-1)?.args;
  t.equal(workdir, '/app');
  const destination = (source: string) =>
    copies
      .find((words) => words.slice(0, -1).some((s) => s.replace(/^\.\//, '').replace(/\/$/, '') === source))
      ?.at(-1);
  t.match(destination('src'), /^(\.\/src\/?|\/app\/src\/?)$/, 'src/ copied to /app/src');
  t.match(destination('sql'), /^(\.\/sql\/?|\/app\/sql\/?)$/, 'sql/ copied to /app/sql');
  t.match(
    readFileSync('src/db/migrate.ts', 'utf8'),
    /new URL\('\.\.\/\.\.\/sql\/', import\.meta\.url\)/,
    'migrate.ts still reads ../../sql/',
  );

  const cmd = all('CMD').at(-1)?.args ?? '';
  t.same(JSON.parse(cmd), ['node', 'src/main.ts'], 'CMD (exec form) runs src/main.ts with node');
  t.equal(all('ENTRYPOINT').length, 0, 'no ENTRYPOINT wraps the CMD');

  const env = all('ENV').flatMap((i) => envNames(i.args));
  for (const name of ['NODE_ENV', 'PORT', 'HOST']) t.ok(env.includes(name), `ENV ${name}`);
  for (const name of env.filter((n) => n !== 'NODE_ENV')) t.ok(known.has(name), `ENV ${name} is a config key`);
  const envText = all('ENV')
    .map((i) => i.args)
    .join(' ');
  t.match(envText, /\bPORT=3000\b/);
  t.match(envText, /\bHOST=0\.0\.0\.0\b/);
  t.match(envText, /\bNODE_ENV=production\b/);
  t.same(
    all('EXPOSE').map((i) => i.args),
    ['3000'],
    'EXPOSE 3000',
  );

  const healthcheck = all('HEALTHCHECK').at(-1)?.args ?? '';
  t.match(healthcheck, /\/healthz/, 'HEALTHCHECK probes /healthz');
  t.match(readFileSync('src/http/routes/health.routes.ts', 'utf8'), /router\.get\('\/healthz'/, '/healthz exists');
});

t.test('.dockerignore keeps local state out of the build context', async (t) => {
  const entries = readFileSync('.dockerignore', 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim().replace(/^\//, '').replace(/\/$/, ''))
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const entry of ['node_modules', '.data', '.git', '.tap', 'coverage', 'bench'])
    t.ok(entries.includes(entry), entry);
  for (const needed of ['src', 'sql', 'package.json', 'package-lock.json']) {
    t.notOk(
      entries.some((e) => e === needed || e === '*' || e === '**'),
      `${needed} is not ignored`,
    );
  }
});

t.test('compose.yaml', async (t) => {
  const compose = parse(readFileSync('compose.yaml', 'utf8')) as ComposeFile;
  const { services } = compose;
  t.ok(services.postgres, 'has postgres');
  t.ok(services.gateway, 'has gateway');
  const postgres = services.postgres ?? {};
  const gateway = services.gateway ?? {};

  t.equal(postgres.image, 'postgres:18');
  const pgEnv = composeEnvironment(postgres);
  t.ok(pgEnv.POSTGRES_PASSWORD, 'POSTGRES_PASSWORD set');
  t.equal(pgEnv.POSTGRES_DB, 'gateway', 'creates database gateway');
  const healthTest = [postgres.healthcheck?.test].flat().join(' ');
  t.match(healthTest, /pg_isready/, 'postgres healthcheck uses pg_isready');
  const pgVolume = postgres.volumes?.find((v) => typeof v === 'string' && v.includes(':'));
  const [volumeName, volumeTarget] = (typeof pgVolume === 'string' ? pgVolume : '').split(':');
  t.ok(volumeName && compose.volumes && volumeName in compose.volumes, 'postgres data in a named volume');
  // postgres:18 keeps PGDATA in /var/lib/postgresql/18/docker; a mount at .../data stops it.
  t.equal(volumeTarget, '/var/lib/postgresql', 'mounted where the postgres 18 image expects it');

  const context = typeof gateway.build === 'string' ? gateway.build : gateway.build?.context;
  t.match(context, /^\.\/?$/, 'gateway is built from this directory');
  t.equal(gateway.deploy?.replicas, 2, 'gateway has 2 replicas');
  t.notOk(gateway.container_name, 'no container_name (it would forbid replicas)');

  const env = composeEnvironment(gateway);
  const url = new URL(env.DATABASE_URL ?? 'missing://');
  t.match(url.protocol, /^postgres(ql)?:$/, 'DATABASE_URL is a postgres URL');
  t.equal(url.hostname, 'postgres', 'DATABASE_URL points at the postgres service');
  t.equal(url.port || '5432', '5432');
  t.equal(url.pathname, `/${pgEnv.POSTGRES_DB}`, 'at the database compose creates');
  t.equal(decodeURIComponent(url.username), pgEnv.POSTGRES_USER ?? 'postgres', 'with its user');
  t.equal(decodeURIComponent(url.password), pgEnv.POSTGRES_PASSWORD, 'and its password');
  t.equal(env.LOG_LEVEL, 'info');
  for (const name of Object.keys(env)) t.ok(known.has(name), `gateway env ${name} is a key of the config schema`);

  const dependsOn = gateway.depends_on ?? [];
  t.notOk(Array.isArray(dependsOn), 'depends_on in the long form (with a condition)');
  t.equal(
    Array.isArray(dependsOn) ? undefined : dependsOn.postgres?.condition,
    'service_healthy',
    'waits for a healthy postgres',
  );

  // Two replicas on one host: each needs its own host port, or none fixed.
  const ports = gateway.ports ?? [];
  t.equal(ports.length, 1, 'one port mapping');
  const mapping = ports[0];
  const spec = typeof mapping === 'string' ? mapping : `${mapping?.published ?? ''}:${mapping?.target}`;
  const parts = spec.split(':');
  t.equal(parts.at(-1), '3000', 'maps container port 3000 (PORT)');
  const published = parts.length > 1 ? parts.at(-2) : '';
  if (published) {
    const range = /^(\d+)-(\d+)$/.exec(published);
    t.ok(range, `host side ${published} is a range, not one port both replicas would fight over`);
    if (range)
      t.ok(
        Number(range[2]) - Number(range[1]) + 1 >= (gateway.deploy?.replicas ?? 1),
        'the range has a port per replica',
      );
  }

  // Kafka is optional: only under a profile, and nothing started by default needs it.
  const kafkaServices = Object.entries(services).filter(
    ([name, service]) => /kafka/i.test(name) || /kafka/i.test(String(service.image ?? '')),
  );
  t.ok(kafkaServices.length > 0, 'has a kafka service');
  for (const [name, service] of kafkaServices) {
    t.ok(Array.isArray(service.profiles) && service.profiles.length > 0, `${name} only under a profile`);
  }
  const broker = composeEnvironment(services.kafka ?? {});
  t.match(broker.KAFKA_PROCESS_ROLES ?? '', /broker/, 'kafka runs KRaft (broker role)');
  t.match(broker.KAFKA_PROCESS_ROLES ?? '', /controller/, 'kafka runs KRaft (controller role)');
  t.ok(broker.KAFKA_CONTROLLER_QUORUM_VOTERS, 'kafka has its controller quorum');
  t.match(JSON.stringify(services['kafka-init']?.command ?? ''), /payment-orders\.events/, 'the topic is created');
  // The same broker and settings as `npm run test:kafka` (test/kafka/pom.xml, test/kafka/broker.ts).
  const pom = readFileSync('test/kafka/pom.xml', 'utf8');
  const testedVersion = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1];
  t.ok(testedVersion, 'the tests name their Kafka version');
  for (const [name, service] of kafkaServices)
    t.equal(service.image, `apache/kafka:${testedVersion}`, `${name} runs the Kafka the tests run`);
  const testBroker = readFileSync('test/kafka/broker.ts', 'utf8');
  t.match(testBroker, new RegExp(`'num\\.partitions=${broker.KAFKA_NUM_PARTITIONS}'`), 'the same partition count');
  t.equal(String(broker.KAFKA_AUTO_CREATE_TOPICS_ENABLE), 'false', 'no topic auto-creation, as in the tests');
  t.match(testBroker, /'auto\.create\.topics\.enable=false'/);
  t.match(
    JSON.stringify(services['kafka-init']?.command ?? ''),
    new RegExp(`"--partitions","${broker.KAFKA_NUM_PARTITIONS}"`),
  );
  for (const name of ['postgres', 'gateway']) t.notOk(services[name]?.profiles, `${name} starts without a profile`);
  const gatewayDeps = Array.isArray(dependsOn) ? dependsOn : Object.keys(dependsOn ?? {});
  for (const [name] of kafkaServices) t.notOk(gatewayDeps.includes(name), `gateway does not depend on ${name}`);
});

if (existsSync('README.md')) {
  t.test('README explains docker compose', async (t) => {
    t.match(readFileSync('README.md', 'utf8'), /docker compose up/);
  });
}
