/**
 * A real Apache Kafka broker for the Kafka tests and benchmark: Kafka itself, from its Maven Central
 * jars (test/kafka/pom.xml), in KRaft mode, one process acting as broker and controller, on free
 * loopback ports, with its log in a temporary directory. No Docker, no tarball.
 *
 *   jars      mvn -B -q dependency:copy-dependencies, once per pom (cached in ~/.m2 and .data/kafka)
 *   format    kafka.tools.StorageTool format -t <cluster id> -c server.properties
 *   start     java -Xmx512m kafka.Kafka server.properties   (ready: "Kafka Server started")
 *   kill      SIGKILL; restart() starts it again on the same log directory and ports
 *   read      Apache Kafka's own console consumer: the topic as a client we did not write sees it
 *
 * Needs `java` (17+) on the PATH, and `mvn` the first time (to fetch the jars); without them it
 * throws an error that says which is missing and how to get it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Admin } from '@platformatic/kafka';
import { freePort } from '../../src/db/embedded-postgres.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const POM = path.join(HERE, 'pom.xml');
const LOG_CONFIG = path.join(HERE, 'log4j2.properties');
const READY_LINE = 'Kafka Server started';
/** Start-up is ~3 s on this machine (JVM, log recovery); a restart after SIGKILL recovers the log. */
const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;
const KEPT_OUTPUT_LINES = 200;
/** ≤ 1 GiB of heap, as the issue asks; one broker with small topics needs far less. */
const HEAP = ['-Xms128m', '-Xmx512m'];

export type TopicOptions = Readonly<{ partitions?: number; configs?: Record<string, string> }>;

/** One record as Apache Kafka's console consumer printed it. */
export type ConsumedRecord = Readonly<{
  partition: number;
  offset: number;
  key: string;
  value: string;
  headers: Readonly<Record<string, string>>;
}>;

export type KafkaBroker = Readonly<{
  /** host:port, for KAFKA_BROKERS. */
  address: string;
  brokers: readonly string[];
  /** The broker process's recent output (for failure messages). */
  output(): string;
  running(): boolean;
  createTopic(name: string, options?: TopicOptions): Promise<void>;
  /** Every record of the topic, from the beginning, read by Apache Kafka's console consumer. */
  readTopic(topic: string): Promise<ConsumedRecord[]>;
  /** Each partition's end offset now: records written later have offsets at or past it. */
  endOffsets(topic: string): Promise<Map<number, number>>;
  /** SIGKILL: no shutdown, no flush; the log directory stays as the process left it. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after 30 s). */
  stop(): Promise<void>;
  /** Starts it again on the same log directory and ports (after kill or stop). */
  start(): Promise<void>;
  /** Stops it and deletes its log directory. */
  destroy(): Promise<void>;
}>;

export type BrokerOptions = Readonly<{
  /** Broker-wide message.max.bytes (default Kafka's, ~1 MiB). */
  messageMaxBytes?: number;
  /** Format and configure, but do not start (a broker that is "down at start"). */
  startNow?: boolean;
}>;

/** Formats a fresh log directory and starts a broker on it. */
export async function startKafkaBroker(options: BrokerOptions = {}): Promise<KafkaBroker> {
  const classpath = await kafkaClasspath();
  const [port, controllerPort] = [await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  const dir = await mkdtemp(path.join(tmpdir(), 'pog-kafka-'));
  const propertiesFile = path.join(dir, 'server.properties');
  await writeFile(
    propertiesFile,
    serverProperties({ port, controllerPort, logDir: path.join(dir, 'log'), ...options }),
  );
  const clusterId = randomBytes(16).toString('base64url');
  // `--cluster-id=`: a base64url id may start with '-', which would read as an option.
  await run('java', [
    '-cp',
    classpath,
    'kafka.tools.StorageTool',
    'format',
    `--cluster-id=${clusterId}`,
    '-c',
    propertiesFile,
  ]);

  let child: ChildProcess | undefined;
  let lines: string[] = [];
  const output = () => lines.join('\n');
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const start = async (): Promise<void> => {
    if (running()) throw new Error('the Kafka broker is already running');
    lines = [];
    const process_ = spawn(
      'java',
      [...HEAP, `-Dlog4j2.configurationFile=${LOG_CONFIG}`, '-cp', classpath, 'kafka.Kafka', propertiesFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = process_;
    killWithThisProcess(process_);
    let ready!: () => void;
    const started = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const collect = (chunk: Buffer) => {
      for (const line of String(chunk).split('\n')) {
        if (line === '') continue;
        lines.push(line);
        if (line.includes(READY_LINE)) ready();
      }
      if (lines.length > KEPT_OUTPUT_LINES) lines = lines.slice(-KEPT_OUTPUT_LINES);
    };
    process_.stdout?.on('data', collect);
    process_.stderr?.on('data', collect);
    const exited = once(process_, 'exit').then(([code, signal]) => {
      throw new Error(`the Kafka broker exited during start-up (${signal ?? code}):\n${output()}`);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the Kafka broker did not start within ${START_TIMEOUT_MS} ms:\n${output()}`)),
        START_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([started, exited, timeout]);
    } catch (error) {
      process_.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(timer);
      exited.catch(() => {});
    }
  };

  const signalAndWait = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child;
    if (!current || !running()) return;
    const exited = once(current, 'exit');
    current.kill(signal);
    const timer = setTimeout(() => current.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  if (options.startNow !== false) await start();
  return {
    address,
    brokers: [address],
    output,
    running,
    createTopic: (name, topicOptions) => createTopic([address], name, topicOptions),
    readTopic: (topic) => readTopic(classpath, address, topic),
    endOffsets: (topic) => endOffsets(classpath, address, topic),
    kill: () => signalAndWait('SIGKILL'),
    stop: () => signalAndWait('SIGTERM'),
    start,
    async destroy() {
      await signalAndWait('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A broker must not outlive the test that started it (tap kills a test file that runs past its
 * timeout with SIGKILL, and no handler runs then). A watchdog shell reads our end of a pipe: when
 * this process dies, the pipe closes, `read` returns, and the watchdog SIGKILLs the broker. When
 * the broker exits first, the watchdog is ended with it.
 */
function killWithThisProcess(broker: ChildProcess): void {
  const watchdog = spawn('sh', ['-c', `read _ ; kill -9 ${broker.pid} 2>/dev/null`], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  broker.once('exit', () => watchdog.kill('SIGKILL'));
}

function serverProperties(settings: {
  port: number;
  controllerPort: number;
  logDir: string;
  messageMaxBytes?: number;
}): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${settings.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${settings.port},CONTROLLER://127.0.0.1:${settings.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${settings.port}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${settings.logDir}`,
    // As in compose.yaml's kafka service: 3 partitions, single-node replication factors.
    'num.partitions=3',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // The gateway never creates topics: a missing topic must be seen as missing.
    'auto.create.topics.enable=false',
    ...(settings.messageMaxBytes === undefined ? [] : [`message.max.bytes=${settings.messageMaxBytes}`]),
    '',
  ].join('\n');
}

/** Creates a topic (replication factor 1) through the client's admin API. */
export async function createTopic(brokers: readonly string[], name: string, options: TopicOptions = {}): Promise<void> {
  const admin = new Admin({ clientId: 'pog-test-admin', bootstrapBrokers: [...brokers] });
  try {
    await admin.createTopics({
      topics: [name],
      partitions: options.partitions ?? 3,
      replicas: 1,
      configs: Object.entries(options.configs ?? {}).map(([configName, value]) => ({ name: configName, value })),
    });
  } finally {
    await admin.close();
  }
}

const FIELD = '\x1f';
const RECORD = '\x1e';

/**
 * Reads a whole topic with Apache Kafka's own tools: GetOffsetShell for how many records it holds
 * (the sum of its partitions' end offsets; nothing is deleted in a test's lifetime), then
 * ConsoleConsumer from the beginning until it has that many (a fresh consumer group each time).
 * `deadlineMs` bounds the read; fewer records than the offsets promise is an error. Fields are
 * printed with ASCII unit/record separators, which JSON values cannot contain unescaped.
 */
export async function readTopic(
  classpath: string,
  address: string,
  topic: string,
  deadlineMs = 60_000,
): Promise<ConsumedRecord[]> {
  const total = await recordsInTopic(classpath, address, topic);
  if (total === 0) return [];
  const property = (setting: string) => ['--formatter-property', setting];
  const { stdout } = await run(
    'java',
    [
      `-Dlog4j2.configurationFile=${LOG_CONFIG}`,
      '-cp',
      classpath,
      'org.apache.kafka.tools.consumer.ConsoleConsumer',
      '--bootstrap-server',
      address,
      '--topic',
      topic,
      '--from-beginning',
      '--max-messages',
      String(total),
      '--timeout-ms',
      String(deadlineMs),
      ...property('print.partition=true'),
      ...property('print.offset=true'),
      ...property('print.headers=true'),
      ...property('print.key=true'),
      ...property(`key.separator=${FIELD}`),
      ...property('headers.separator=,'),
      ...property(`line.separator=${RECORD}\n`),
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  const records = stdout
    .split(`${RECORD}\n`)
    .filter((line) => line.startsWith('Partition:'))
    .map((line) => {
      const [partition, offset, headers, key, value] = line.split(FIELD);
      return {
        partition: Number(partition?.slice('Partition:'.length)),
        offset: Number(offset?.slice('Offset:'.length)),
        headers: Object.fromEntries(
          (headers ?? '').split(',').map((header) => {
            const at = header.indexOf(':');
            return [header.slice(0, at), header.slice(at + 1)];
          }),
        ),
        key: key ?? '',
        value: value ?? '',
      };
    });
  if (records.length !== total) throw new Error(`read ${records.length} of the ${total} records of ${topic}`);
  return records;
}

async function recordsInTopic(classpath: string, address: string, topic: string): Promise<number> {
  const offsets = await endOffsets(classpath, address, topic);
  return [...offsets.values()].reduce((sum, offset) => sum + offset, 0);
}

/** Each partition's end offset (the next record's), as `GetOffsetShell` prints them: `topic:partition:endOffset`. */
async function endOffsets(classpath: string, address: string, topic: string): Promise<Map<number, number>> {
  const { stdout } = await run('java', [
    `-Dlog4j2.configurationFile=${LOG_CONFIG}`,
    '-cp',
    classpath,
    'org.apache.kafka.tools.GetOffsetShell',
    '--bootstrap-server',
    address,
    '--topic',
    topic,
  ]);
  const offsets = new Map<number, number>();
  for (const line of stdout.split('\n').filter((l) => l.startsWith(`${topic}:`))) {
    const [partition, offset] = line
      .slice(topic.length + 1)
      .split(':')
      .map(Number);
    if (!Number.isInteger(partition) || !Number.isInteger(offset)) continue;
    offsets.set(partition as number, offset as number);
  }
  if (offsets.size === 0) throw new Error(`GetOffsetShell printed no offsets for ${topic}:\n${stdout}`);
  return offsets;
}

/**
 * The broker's classpath (`<dir>/*`): test/kafka/pom.xml's dependencies, copied by Maven into
 * .data/kafka/jars-<hash of the pom> once; a changed pom resolves again into a new directory.
 * Two processes resolving at once each copy into a directory of their own and rename it into
 * place; the loser's rename fails and it uses the winner's.
 */
export async function kafkaClasspath(): Promise<string> {
  await requireCommand('java', ['-version'], 'Java 17 or newer (e.g. `apt-get install openjdk-17-jre-headless`)');
  const hash = createHash('sha256').update(readFileSync(POM)).digest('hex').slice(0, 12);
  const jars = path.join(ROOT, '.data', 'kafka', `jars-${hash}`);
  if (!existsSync(path.join(jars, '.complete'))) {
    await requireCommand('mvn', ['-v'], 'Apache Maven 3 (e.g. `apt-get install maven`), to fetch the Kafka jars once');
    const partial = `${jars}.partial-${process.pid}`;
    await mkdir(partial, { recursive: true });
    try {
      await run('mvn', ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${partial}`], {
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`Maven could not fetch the Kafka jars of ${POM}:\n${stdout}${stderr}`);
    }
    await writeFile(path.join(partial, '.complete'), '');
    await rename(partial, jars).catch(() => rm(partial, { recursive: true, force: true }));
  }
  return `${jars}/*`;
}

async function requireCommand(command: string, args: string[], what: string): Promise<void> {
  try {
    await run(command, args);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new Error(
      `The Kafka tests start a real Apache Kafka broker from Maven Central's jars and need ${what}: ` +
        `\`${command}\` is not on the PATH. Install it, or run \`npm test\` (which needs neither).`,
    );
  }
}
