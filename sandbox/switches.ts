import { z } from 'zod';

/** The public passkey of Daraja's sandbox shortcode 174379 (Safaricom's developer portal). */
export const DARAJA_SANDBOX_PASSKEY = 'bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919';

const rate = z.number().min(0).max(1);
const count = z.number().int().min(0);
const milliseconds = z.number().min(0);

/** The sandbox's fault and behaviour switches. Every field is documented with its default below. */
export const switchesSchema = z.strictObject({
  latencyMs: milliseconds,
  declineRate: rate,
  errorRate: rate,
  rateLimitRate: rate,
  retryAfterSeconds: count,
  timeoutRate: rate,
  lostResponseRate: rate,
  failNext: count,
  rateLimitNext: count,
  timeoutNext: count,
  loseNext: count,
  faultPaths: z.array(z.string().startsWith('/')),
  mpesaCallback: z.enum(['normal', 'late', 'missing', 'duplicate']),
  mpesaCallbackDelayMs: milliseconds,
  mpesaLateCallbackDelayMs: milliseconds,
  mpesaTokenTtlSeconds: z.number().int().positive(),
  mpesaPasskey: z.string().min(1),
  stripeErrorsAfterProcessing: z.boolean(),
  mpesaErrorCode: z.string().regex(/^\d{3}\.\d{3}\.\d+$/),
  connectDelayMs: milliseconds,
  idleResetMs: milliseconds,
});

export type Switches = z.infer<typeof switchesSchema>;

export const DEFAULT_SWITCHES: Readonly<Switches> = Object.freeze({
  latencyMs: 0,
  declineRate: 0,
  errorRate: 0,
  rateLimitRate: 0,
  retryAfterSeconds: 1,
  timeoutRate: 0,
  lostResponseRate: 0,
  failNext: 0,
  rateLimitNext: 0,
  timeoutNext: 0,
  loseNext: 0,
  faultPaths: [],
  mpesaCallback: 'normal',
  mpesaCallbackDelayMs: 200,
  mpesaLateCallbackDelayMs: 5000,
  // Daraja's tokens live one hour; it announces 3599 seconds.
  mpesaTokenTtlSeconds: 3599,
  mpesaPasskey: DARAJA_SANDBOX_PASSKEY,
  // A Stripe 5xx fault refuses the request (false), or hits after the PaymentIntent was created
  // and charged (true): Stripe then saves the 500 under the idempotency key and replays it.
  stripeErrorsAfterProcessing: false,
  // Daraja's code on an M-Pesa 5xx fault: 500.003.1001 is its internal error (the request may have
  // been acted on); 500.003.02 ("system is busy", spike arrest) refuses it.
  mpesaErrorCode: '500.003.1001',
  // Connection behaviour (connections.ts): off.
  connectDelayMs: 0,
  idleResetMs: 0,
});

export class SwitchesError extends Error {}

/** `current` with `patch` applied; throws SwitchesError naming every invalid or unknown field. */
export function mergeSwitches(current: Readonly<Switches>, patch: unknown): Switches {
  const parsed = switchesSchema.partial().safeParse(patch);
  if (!parsed.success) throw new SwitchesError(`invalid switches: ${z.prettifyError(parsed.error)}`);
  const defined = Object.entries(parsed.data).filter(([, value]) => value !== undefined);
  return {
    ...current,
    ...Object.fromEntries(defined),
    faultPaths: [...(parsed.data.faultPaths ?? current.faultPaths)],
  };
}

export type Fault = 'error' | 'rate_limit' | 'timeout' | 'lost';

// The deterministic counters are checked first, in this order, then the rates.
const NEXT_COUNTERS = [
  ['failNext', 'error'],
  ['rateLimitNext', 'rate_limit'],
  ['timeoutNext', 'timeout'],
  ['loseNext', 'lost'],
] as const;
const RATES = [
  ['errorRate', 'error'],
  ['rateLimitRate', 'rate_limit'],
  ['timeoutRate', 'timeout'],
  ['lostResponseRate', 'lost'],
] as const;

/**
 * The fault a provider request at `path` gets, if any. Uses up one unit of a `*Next` counter
 * (it mutates `switches`); requests outside `faultPaths` (when it is set) get none.
 */
export function takeFault(switches: Switches, path: string, random: () => number = Math.random): Fault | null {
  if (switches.faultPaths.length > 0 && !switches.faultPaths.some((prefix) => path.startsWith(prefix))) return null;
  for (const [counter, fault] of NEXT_COUNTERS) {
    if (switches[counter] > 0) {
      switches[counter] -= 1;
      return fault;
    }
  }
  for (const [rate, fault] of RATES) {
    if (random() < switches[rate]) return fault;
  }
  return null;
}
