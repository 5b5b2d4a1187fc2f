import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../src/config/config.ts';
import { childEnv } from './helpers/child-env.ts';
import { testDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';

// LOG_FORMAT (auto by default): human text when stdout is a terminal, JSON otherwise, and the same
// redaction either way. The terminal is a real pseudo-terminal: util-linux `script` runs the
// command on one and copies what it writes to our pipe.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SAMPLE = fileURLToPath(new URL('./helpers/log-sample.ts', import.meta.url));
// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal colour codes begin with ESC.
const ANSI = /\x1b\[[0-9;]*m/g;
const SECRET = `sk_${'Zq9'.repeat(14)}x`;
/** Fields of the sample line that the logger redacts (test/helpers/log-sample.ts). */
const REDACTED_FIELDS = 10;

type Run = Readonly<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }>;

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/**
 * `node <args>` with stdout a terminal (under `script`) or a pipe. The shell prints its pid before
 * it execs node, so a test can signal the program itself rather than `script`.
 */
function run(t: Test, how: 'terminal' | 'pipe', args: string[], env: Record<string, string>): Run {
  const node = [process.execPath, ...args].map(quote).join(' ');
  const command = `echo "pid=$$"; exec ${node}`;
  const child =
    how === 'terminal'
      ? spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, env: childEnv(env) })
      : spawn('sh', ['-c', command], { cwd: ROOT, env: childEnv(env) });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const pid = /pid=(\d+)/.exec(output)?.[1];
      if (pid) process.kill(Number(pid), 'SIGKILL');
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, output: () => output.replaceAll('\r\n', '\n'), exited };
}

/** The lines a program wrote, without the pid line and the terminal's colours. */
const linesOf = (output: string) =>
  output
    .replace(ANSI, '')
    .split('\n')
    .filter((line) => line !== '' && !/^pid=\d+$/.test(line));

const isJsonObject = (line: string) => {
  try {
    return typeof JSON.parse(line) === 'object';
  } catch {
    return false;
  }
};

async function sample(t: Test, how: 'terminal' | 'pipe', env: Record<string, string> = {}) {
  const sampled = run(t, how, [SAMPLE], { LOG_SAMPLE_SECRET: SECRET, ...env });
  t.equal(await sampled.exited, 0, 'the sample exits 0');
  return sampled.output();
}

t.test('on a terminal: human text, every secret redacted', async (t) => {
  const output = await sample(t, 'terminal');
  t.match(output, ANSI, 'coloured for the terminal');
  const lines = linesOf(output);
  t.match(lines[0], /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: a sample line with secrets$/, 'time, level, message');
  t.notOk(
    lines.some((line) => isJsonObject(line)),
    'no line is a JSON object',
  );
  t.ok(lines.includes('    orderId: "po_sample"'), 'fields follow, one a line');
  t.notMatch(output, SECRET.slice(3, 20), 'the secret is not there');
  t.equal(output.match(/\[redacted\]/g)?.length, REDACTED_FIELDS, 'each redacted field says so');
});

t.test('piped: JSON lines, every secret redacted', async (t) => {
  const output = await sample(t, 'pipe');
  const lines = linesOf(output);
  t.equal(lines.length, 1);
  const line = JSON.parse(lines[0] as string);
  t.match(line, {
    level: 30,
    msg: 'a sample line with secrets',
    service: 'payment-order-gateway',
    orderId: 'po_sample',
    apiKey: '[redacted]',
    authorization: '[redacted]',
    req: { headers: { authorization: '[redacted]' } },
    paymentMethod: '[redacted]',
    webhook: { secret: '[redacted]', apiKey: '[redacted]', password: '[redacted]' },
    databaseUrl: '[redacted]',
  });
  t.notMatch(output, SECRET.slice(3, 20));
  t.equal(output.match(/\[redacted\]/g)?.length, REDACTED_FIELDS);
});

t.test('LOG_FORMAT overrides the choice both ways', async (t) => {
  const json = linesOf(await sample(t, 'terminal', { LOG_FORMAT: 'json' }));
  t.equal(json.length, 1);
  t.match(
    JSON.parse(json[0] as string),
    { msg: 'a sample line with secrets', apiKey: '[redacted]' },
    'json on a terminal',
  );

  const output = await sample(t, 'pipe', { LOG_FORMAT: 'pretty' });
  t.notMatch(output, ANSI, 'pretty into a pipe: no colours');
  t.match(linesOf(output)[0], /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: a sample line with secrets$/);
  t.notMatch(output, SECRET.slice(3, 20));
  t.equal(output.match(/\[redacted\]/g)?.length, REDACTED_FIELDS);

  const auto = loadConfig({});
  t.equal(auto.logFormat, 'auto', 'auto is the default');
  t.throws(() => loadConfig({ LOG_FORMAT: 'xml' }), ConfigError, 'anything else is refused at start');
});

t.test('the gateway itself (npm start) on a terminal: text; a key sent to it is not logged', async (t) => {
  const database = await testDatabase(t);
  const gateway = run(t, 'terminal', ['src/main.ts'], {
    DATABASE_URL: database.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    DATABASE_POOL_SIZE: '6',
    PROVIDER_SANDBOX: 'false',
  });
  const port = await waitFor('the gateway to listen', () => {
    if (gateway.child.exitCode !== null) throw new Error(`the gateway exited:\n${gateway.output()}`);
    const text = gateway.output().replace(ANSI, '');
    return /INFO: payment order gateway listening\n\s+port: (\d+)/.exec(text)?.[1];
  });
  const res = await fetch(`http://127.0.0.1:${port}/payment-orders`, {
    headers: { Authorization: `Bearer ${SECRET}`, 'X-Request-Id': 'pretty-log-check' },
  });
  t.equal(res.status, 401, 'a made-up key is refused');
  await waitFor('the request line', () => gateway.output().includes('pretty-log-check'));
  const pid = Number(/pid=(\d+)/.exec(gateway.output())?.[1]);
  process.kill(pid, 'SIGTERM');
  t.equal(await gateway.exited, 0, 'stops cleanly on SIGTERM');

  const output = gateway.output();
  const lines = linesOf(output);
  t.ok(lines.length > 3, 'it logged');
  t.notOk(
    lines.some((line) => isJsonObject(line)),
    'no line is a JSON object',
  );
  t.ok(
    lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: request completed$/.test(line)),
    'the request, as text',
  );
  t.notMatch(output, SECRET.slice(3, 20), 'the key is not in the log');
  t.notMatch(output, /Bearer/);
});

t.test('the gateway piped: JSON lines', async (t) => {
  const database = await testDatabase(t);
  const gateway = run(t, 'pipe', ['src/main.ts'], {
    DATABASE_URL: database.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    DATABASE_POOL_SIZE: '6',
    PROVIDER_SANDBOX: 'false',
  });
  const listening = await waitFor('the gateway to listen', () => {
    if (gateway.child.exitCode !== null) throw new Error(`the gateway exited:\n${gateway.output()}`);
    return linesOf(gateway.output())
      .filter(isJsonObject)
      .map((line) => JSON.parse(line))
      .find((line) => line.msg === 'payment order gateway listening');
  });
  const res = await fetch(`http://127.0.0.1:${listening.port}/payment-orders`, {
    headers: { Authorization: `Bearer ${SECRET}` },
  });
  t.equal(res.status, 401);
  await waitFor('the request line', () => gateway.output().includes('"statusCode":401'));
  process.kill(Number(/pid=(\d+)/.exec(gateway.output())?.[1]), 'SIGTERM');
  t.equal(await gateway.exited, 0);
  const lines = linesOf(gateway.output());
  t.ok(lines.length > 3);
  t.ok(
    lines.every((line) => isJsonObject(line)),
    'every line is a JSON object',
  );
  t.notMatch(gateway.output(), SECRET.slice(3, 20));
});
