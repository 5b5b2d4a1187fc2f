import { isIP } from 'node:net';
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/**
 * The one source of configuration: the process environment, validated once at start-up.
 * Every variable and its default is listed in README.md ("Configuration").
 */
const booleanString = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  /** Where the embedded PostgreSQL keeps its files when DATABASE_URL is unset. */
  DATA_DIR: z.string().min(1).default('.data'),
  /** 0 = pick a free port at every start; the URL is logged. */
  EMBEDDED_PG_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** json: one JSON object a line; pretty: human text (pino-pretty); auto: pretty on a terminal, else json. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Stripe keeps keys 24 h; we never keep them for less. */
  IDEMPOTENCY_KEY_TTL_HOURS: z.coerce
    .number()
    .int()
    .min(24)
    .max(24 * 365)
    .default(24),
  /** Cron (UTC) for the job that deletes expired idempotency keys. */
  IDEMPOTENCY_SWEEP_CRON: z
    .string()
    .min(1)
    .default('*/15 * * * *')
    .refine(isCron, { message: 'not a cron expression (e.g. "*/15 * * * *")' }),
  /** Providers that orders may name. */
  PROVIDERS: z
    .string()
    .default('stripe,mpesa')
    .transform((value) =>
      value
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    ),
  /** Default provider per currency, "KES:mpesa,...", for orders that name none. */
  PROVIDER_BY_CURRENCY: z
    .string()
    .default('KES:mpesa')
    .transform((value, ctx) => {
      const routes: Record<string, string> = {};
      for (const pair of value.split(',').filter((part) => part.trim() !== '')) {
        const [currency, provider] = pair.split(':').map((part) => part.trim());
        if (!currency || !provider || !/^[A-Za-z]{3}$/.test(currency)) {
          ctx.addIssue({ code: 'custom', message: `bad entry "${pair}", expected CUR:provider` });
          return z.NEVER;
        }
        routes[currency.toUpperCase()] = provider;
      }
      return routes;
    }),
  /** Provider for currencies that PROVIDER_BY_CURRENCY does not name. */
  DEFAULT_PROVIDER: z.string().min(1).default('stripe'),
  /** Connections in this instance's pool (pg-boss keeps its own, smaller pool). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(200).default(20),
  /**
   * Group commit of POST /payment-orders: most creates written in one transaction (1 = one
   * transaction per create), and most such transactions at once. A lone request is never held back.
   */
  CREATE_BATCH_MAX: z.coerce.number().int().min(1).max(1_000).default(100),
  CREATE_BATCHES_IN_FLIGHT: z.coerce.number().int().min(1).max(50).default(4),
  /**
   * How long this process trusts an API key it has looked up: a revoked key is refused by every
   * instance within this many seconds (0 = look up every request).
   */
  API_KEY_CACHE_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
  /** How long a start waits for an unreachable DATABASE_URL before giving up (0 = wait forever). */
  DATABASE_STARTUP_TIMEOUT_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  /** How long SIGTERM waits for in-flight requests and jobs before closing anyway. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(120_000).default(10_000),
  /** Create the demo merchant and print its key at start (default: on with the embedded database). */
  DEMO_MERCHANT: booleanString.optional(),

  /** Base URL providers reach us on (M-Pesa callbacks). Default: http://127.0.0.1:<PORT>. */
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  STRIPE_SECRET_KEY: z.string().min(1).optional(),
  /** Stripe's base URL. Default: Stripe's, or the provider sandbox when no key is configured. */
  STRIPE_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Daraja's base URL, e.g. https://sandbox.safaricom.co.ke. Default: the provider sandbox when no key is configured. */
  MPESA_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  MPESA_CONSUMER_KEY: z.string().min(1).optional(),
  MPESA_CONSUMER_SECRET: z.string().min(1).optional(),
  /** Paybill/till number; default Daraja's public test shortcode. */
  MPESA_SHORTCODE: z
    .string()
    .regex(/^\d{5,7}$/)
    .default('174379'),
  /** Lipa na M-Pesa passkey; default Daraja's public test passkey. */
  MPESA_PASSKEY: z.string().min(1).default('bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919'),
  /** How long to wait for the M-Pesa callback before asking with an STK query. */
  MPESA_CALLBACK_TIMEOUT_SECONDS: z.coerce.number().min(0.1).max(3600).default(30),
  /**
   * A push whose answer was lost cannot be queried (no CheckoutRequestID): past this it is flagged
   * for review. Daraja's STK prompt times out on the phone within about a minute and its callback
   * normally follows within seconds; 5 minutes leaves room for a slow callback.
   */
  MPESA_PUSH_DEADLINE_SECONDS: z.coerce.number().min(1).max(86_400).default(300),
  /** Provider calls per second, across every instance (the global rate gate). */
  PROVIDER_CALLS_PER_SECOND: z.coerce.number().int().min(1).max(1000).default(2),
  /** Optional lower limits per provider, "mpesa:1,stripe:2". */
  PROVIDER_RATE_LIMITS: z
    .string()
    .default('')
    .transform((value, ctx) => {
      const limits: Record<string, number> = {};
      for (const pair of value.split(',').filter((part) => part.trim() !== '')) {
        const [provider, limit] = pair.split(':').map((part) => part.trim());
        if (!provider || !limit || !/^\d+$/.test(limit) || Number(limit) < 1) {
          ctx.addIssue({ code: 'custom', message: `bad entry "${pair}", expected provider:calls-per-second` });
          return z.NEVER;
        }
        limits[provider] = Number(limit);
      }
      return limits;
    }),
  /**
   * Added to the gate's one-second window: how far the provider's view of the calls may differ from
   * the grants. A quarter is the window a call must leave in after its grant, the rest is for the way
   * to the provider (src/db/rate-gate.ts sendTiming). 40 ms: on 2 cores with every core busy, calls
   * arrived 10-35 ms after their grants; at 2 calls/s the rate ceiling is 2 / 1.040 = 1.923 calls/s
   * (52 ms is the most that still allows 1.9).
   */
  PROVIDER_GATE_MARGIN_MS: z.coerce.number().int().min(0).max(500).default(40),
  /** Timeout of one provider HTTP call; a timeout is an UNKNOWN outcome. */
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /** Provider calls per order before retries stop (then FAILED if nothing was charged, else reconciling). */
  PROVIDER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(6),
  RETRY_BASE_DELAY_MS: z.coerce.number().int().min(0).max(3_600_000).default(1_000),
  RETRY_MAX_DELAY_MS: z.coerce.number().int().min(0).max(86_400_000).default(60_000),
  /** The slow schedule for orders whose outcome is unknown after the retries. */
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().min(0.1).max(86_400).default(60),
  /** An outcome still unknown after this long is flagged for review (and still reconciled). */
  REVIEW_AFTER_SECONDS: z.coerce
    .number()
    .min(1)
    .max(30 * 86_400)
    .default(3600),
  /** Orders processed at once by this instance. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(0).max(100).default(4),
  /** Start the provider sandbox for providers without credentials (default true). */
  PROVIDER_SANDBOX: booleanString.default(true),

  /** Address ranges webhooks may reach although private or loopback, e.g. "127.0.0.0/8" for local demos. */
  WEBHOOK_ALLOWED_CIDRS: z.string().default(''),
  /** Allow plain-http webhook URLs everywhere (https is required otherwise, except inside WEBHOOK_ALLOWED_CIDRS). */
  WEBHOOK_ALLOW_HTTP: booleanString.default(false),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  /** Seconds before each delivery attempt: the first at once, then 5 s, 5 min, ... 24 h (about 3 days in all). */
  WEBHOOK_RETRY_SCHEDULE_SECONDS: z
    .string()
    .default('0,5,300,1800,7200,18000,36000,50400,72000,86400')
    .transform((value, ctx) => {
      const steps = value.split(',').map((part) => Number(part.trim()));
      if (steps.length === 0 || steps.some((n) => !Number.isFinite(n) || n < 0)) {
        ctx.addIssue({ code: 'custom', message: 'expected comma-separated non-negative seconds' });
        return z.NEVER;
      }
      return steps;
    }),
  /** Deliveries this instance sends at once. */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(0).max(500).default(128),
  /** How long the old secret keeps signing after a rotation. */
  WEBHOOK_SECRET_ROTATION_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 30)
    .default(24),
  /**
   * An endpoint whose every delivery attempt has failed for this many days is switched off
   * (enabled=false, webhook_subscription.disabled to the merchant's other endpoints), checked every
   * hour; 0 = never. 5, as Svix does: longer than the ~3 days of one delivery's retry schedule.
   */
  WEBHOOK_DISABLE_AFTER_DAYS: z.coerce.number().int().min(0).max(365).default(5),
  /** Kafka brokers, "host:port,..."; unset = no Kafka emitter. */
  KAFKA_BROKERS: z.string().optional(),
  KAFKA_TOPIC: z.string().min(1).default('payment-orders.events'),
  KAFKA_CLIENT_ID: z.string().min(1).default('payment-order-gateway'),
  /** Events per publishing step (one transaction, one send). */
  KAFKA_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(100),
  /** The longest wait between retries while the broker fails (from 500 ms, doubling, jittered). */
  KAFKA_RETRY_MAX_DELAY_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
});

export type Config = Readonly<{
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  embeddedPgPort: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  logFormat: z.infer<typeof envSchema>['LOG_FORMAT'];
  idempotencyKeyTtlHours: number;
  idempotencySweepCron: string;
  providers: readonly string[];
  providerByCurrency: Readonly<Record<string, string>>;
  defaultProvider: string;
  databasePoolSize: number;
  createBatch: Readonly<{ maxBatch: number; maxInFlight: number }>;
  apiKeyCacheMs: number;
  /** How long start-up waits for an unreachable DATABASE_URL; null = forever. */
  databaseStartupTimeoutMs: number | null;
  shutdownTimeoutMs: number;
  demoMerchant: boolean;
  /** Unset: http://127.0.0.1:<the port we listen on>. */
  publicBaseUrl: string | undefined;
  stripe: Readonly<{ secretKey: string | undefined; apiUrl: string | undefined }>;
  mpesa: Readonly<{
    apiUrl: string | undefined;
    consumerKey: string | undefined;
    consumerSecret: string | undefined;
    shortcode: string;
    passkey: string;
    callbackTimeoutMs: number;
    pushDeadlineMs: number;
  }>;
  gate: Readonly<{ callsPerSecond: number; perProvider: Readonly<Record<string, number>>; marginMs: number }>;
  providerTimeoutMs: number;
  retry: Readonly<{
    maxAttempts: number;
    baseDelayMs: number;
    maxDelayMs: number;
    reconcileIntervalMs: number;
    reviewAfterMs: number;
  }>;
  workerConcurrency: number;
  providerSandbox: boolean;
  webhooks: Readonly<{
    allowedCidrs: readonly string[];
    allowHttp: boolean;
    timeoutMs: number;
    retryScheduleMs: readonly number[];
    concurrency: number;
    secretRotationMs: number;
    /** WEBHOOK_DISABLE_AFTER_DAYS; 0 = never. */
    disableAfterDays: number;
  }>;
  kafka: Readonly<{
    brokers: readonly string[];
    topic: string;
    clientId: string;
    batchSize: number;
    retryMaxDelayMs: number;
  }> | null;
}>;

/** An address range: a valid IPv4 or IPv6 address and a prefix that fits it (999.0.0.0/8 is not). */
function isCidr(cidr: string): boolean {
  const [address = '', prefix, ...rest] = cidr.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0 || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

/** What pg-boss's scheduler accepts (it parses crons with cron-parser). */
function isCron(expression: string): boolean {
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseCidrList(value: string): string[] {
  const cidrs = value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  for (const cidr of cidrs) {
    if (!isCidr(cidr)) throw new ConfigError(`invalid configuration:\n  WEBHOOK_ALLOWED_CIDRS: bad range "${cidr}"`);
  }
  return cidrs;
}

/**
 * Connections some parts hold for long: each order in progress keeps its lock's session
 * (db/processing-store.ts), the process's notifications keep one for LISTEN (when the relay or the
 * Kafka emitter runs), and the Kafka emitter one for each step's broker round trip. A step's own
 * statements need one more from the same pool: with every connection held (4 workers and a pool
 * of 5, say), every step waited for a connection that none could give back, and requests got 503
 * after the pool's 5 s. So the pool must leave at least one connection over.
 */
function assertPoolLargeEnough(e: z.infer<typeof envSchema>): void {
  const listening = e.WEBHOOK_CONCURRENCY > 0 || e.KAFKA_BROKERS ? 1 : 0;
  const held = e.WORKER_CONCURRENCY + listening + (e.KAFKA_BROKERS ? 1 : 0);
  if (e.DATABASE_POOL_SIZE > held) return;
  throw new ConfigError(
    `invalid configuration:\n  DATABASE_POOL_SIZE: ${e.DATABASE_POOL_SIZE} is too small: ${held} connections are held ` +
      `for long (WORKER_CONCURRENCY=${e.WORKER_CONCURRENCY} order locks, LISTEN` +
      `${e.KAFKA_BROKERS ? ", the Kafka emitter's step" : ''}); set it to at least ${held + 1}`,
  );
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset", as they do for most twelve-factor tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const routed = [...Object.values(e.PROVIDER_BY_CURRENCY), e.DEFAULT_PROVIDER];
  const unknown = routed.filter((name) => !e.PROVIDERS.includes(name));
  if (unknown.length > 0) {
    throw new ConfigError(`invalid configuration: routes name unconfigured providers: ${unknown.join(', ')}`);
  }
  assertPoolLargeEnough(e);
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    embeddedPgPort: e.EMBEDDED_PG_PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    idempotencyKeyTtlHours: e.IDEMPOTENCY_KEY_TTL_HOURS,
    idempotencySweepCron: e.IDEMPOTENCY_SWEEP_CRON,
    providers: Object.freeze([...e.PROVIDERS]),
    providerByCurrency: Object.freeze({ ...e.PROVIDER_BY_CURRENCY }),
    defaultProvider: e.DEFAULT_PROVIDER,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    createBatch: Object.freeze({ maxBatch: e.CREATE_BATCH_MAX, maxInFlight: e.CREATE_BATCHES_IN_FLIGHT }),
    apiKeyCacheMs: e.API_KEY_CACHE_SECONDS * 1000,
    databaseStartupTimeoutMs:
      e.DATABASE_STARTUP_TIMEOUT_SECONDS === 0 ? null : e.DATABASE_STARTUP_TIMEOUT_SECONDS * 1000,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    demoMerchant: e.DEMO_MERCHANT ?? e.DATABASE_URL === undefined,
    publicBaseUrl: e.PUBLIC_BASE_URL?.replace(/\/$/, ''),
    stripe: Object.freeze({ secretKey: e.STRIPE_SECRET_KEY, apiUrl: e.STRIPE_API_URL }),
    mpesa: Object.freeze({
      apiUrl: e.MPESA_API_URL,
      consumerKey: e.MPESA_CONSUMER_KEY,
      consumerSecret: e.MPESA_CONSUMER_SECRET,
      shortcode: e.MPESA_SHORTCODE,
      passkey: e.MPESA_PASSKEY,
      callbackTimeoutMs: e.MPESA_CALLBACK_TIMEOUT_SECONDS * 1000,
      pushDeadlineMs: e.MPESA_PUSH_DEADLINE_SECONDS * 1000,
    }),
    gate: Object.freeze({
      callsPerSecond: e.PROVIDER_CALLS_PER_SECOND,
      perProvider: Object.freeze({ ...e.PROVIDER_RATE_LIMITS }),
      marginMs: e.PROVIDER_GATE_MARGIN_MS,
    }),
    providerTimeoutMs: e.PROVIDER_TIMEOUT_MS,
    retry: Object.freeze({
      maxAttempts: e.PROVIDER_MAX_ATTEMPTS,
      baseDelayMs: e.RETRY_BASE_DELAY_MS,
      maxDelayMs: e.RETRY_MAX_DELAY_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_SECONDS * 1000,
      reviewAfterMs: e.REVIEW_AFTER_SECONDS * 1000,
    }),
    workerConcurrency: e.WORKER_CONCURRENCY,
    providerSandbox: e.PROVIDER_SANDBOX,
    webhooks: Object.freeze({
      allowedCidrs: Object.freeze(parseCidrList(e.WEBHOOK_ALLOWED_CIDRS)),
      allowHttp: e.WEBHOOK_ALLOW_HTTP,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      retryScheduleMs: Object.freeze(e.WEBHOOK_RETRY_SCHEDULE_SECONDS.map((seconds) => seconds * 1000)),
      concurrency: e.WEBHOOK_CONCURRENCY,
      secretRotationMs: e.WEBHOOK_SECRET_ROTATION_HOURS * 3_600_000,
      disableAfterDays: e.WEBHOOK_DISABLE_AFTER_DAYS,
    }),
    kafka: e.KAFKA_BROKERS
      ? Object.freeze({
          brokers: Object.freeze(
            e.KAFKA_BROKERS.split(',')
              .map((broker) => broker.trim())
              .filter(Boolean),
          ),
          topic: e.KAFKA_TOPIC,
          clientId: e.KAFKA_CLIENT_ID,
          batchSize: e.KAFKA_BATCH_SIZE,
          retryMaxDelayMs: e.KAFKA_RETRY_MAX_DELAY_MS,
        })
      : null,
  });
}
