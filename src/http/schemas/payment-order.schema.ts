import { z } from 'zod';
import { isCurrencyCode, MAX_AMOUNT } from '../../domain/currencies.ts';
import { type NewPaymentOrder, ORDER_ID_PREFIX, ORDER_STATUSES } from '../../domain/payment-order.ts';
import { idPattern } from '../../lib/ids.ts';
import { pageLimit } from './page-limit.schema.ts';

/**
 * Text we can store and give back unchanged: PostgreSQL text cannot hold NUL, and a lone UTF-16
 * surrogate would come back as U+FFFD. Both are refused rather than silently altered.
 */
const safeText = (max: number) =>
  z
    .string()
    .max(max, { error: `must be at most ${max} characters` })
    .refine((s) => s.isWellFormed() && !s.includes('\u0000'), {
      error: 'must be well-formed text without NUL characters',
    });

// Optional fields may be absent or null; both mean "not given" and fingerprint the same.
const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);

const METADATA_MAX_KEYS = 50;
const METADATA_KEY_MAX = 40;
const METADATA_VALUE_MAX = 500;

/**
 * Metadata is validated by hand rather than with z.record: a record schema copies keys by
 * assignment, which silently drops a "__proto__" key. Object.fromEntries defines own properties,
 * so "__proto__" and "constructor" are ordinary keys here, stored and returned like any other.
 */
const metadata = z.unknown().transform((raw, ctx): Record<string, string> => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    ctx.addIssue({ code: 'custom', message: 'must be an object of string keys to string values' });
    return z.NEVER;
  }
  const entries = Object.entries(raw);
  if (entries.length > METADATA_MAX_KEYS) {
    ctx.addIssue({ code: 'custom', message: `must have at most ${METADATA_MAX_KEYS} keys, has ${entries.length}` });
    return z.NEVER;
  }
  for (const [key, value] of entries) {
    if (key.length < 1 || key.length > METADATA_KEY_MAX || !key.isWellFormed() || key.includes('\u0000')) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `keys must be 1 to ${METADATA_KEY_MAX} characters of well-formed text`,
      });
    } else if (typeof value !== 'string') {
      ctx.addIssue({ code: 'custom', path: [key], message: 'values must be strings' });
    } else if (value.length > METADATA_VALUE_MAX || !value.isWellFormed() || value.includes('\u0000')) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `values must be at most ${METADATA_VALUE_MAX} characters of well-formed text`,
      });
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
});

const cardMethod = z.strictObject({
  type: z.literal('card'),
  // A provider token such as Stripe's pm_card_visa: printable ASCII, no spaces.
  token: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, { error: 'must be a provider payment method token' }),
});

const mpesaMethod = z.strictObject({
  type: z.literal('mpesa'),
  // E.164 digits (country code first, at most 15 digits); a leading "+" is accepted and dropped.
  phone: z
    .string()
    .regex(/^\+?[1-9]\d{7,14}$/, { error: 'must be an E.164 phone number, e.g. 254708374149' })
    .transform((phone) => phone.replace(/^\+/, '')),
});

export const createPaymentOrderBody = z.strictObject({
  amount: z
    .number({ error: 'must be an integer amount in minor units' })
    .int({ error: 'must be an integer amount in minor units' })
    .min(1, { error: 'must be at least 1' })
    .max(MAX_AMOUNT, { error: `must be at most ${MAX_AMOUNT}` }),
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, { error: 'must be a three-letter ISO 4217 code' })
    .transform((code) => code.toUpperCase())
    .refine(isCurrencyCode, { error: 'must be an ISO 4217 currency code' }),
  provider: optional(z.string().min(1).max(64)),
  paymentMethod: optional(z.discriminatedUnion('type', [cardMethod, mpesaMethod])),
  reference: optional(safeText(255)),
  description: optional(safeText(1000)),
  metadata: optional(metadata),
});

export function toNewPaymentOrder(body: z.infer<typeof createPaymentOrderBody>): NewPaymentOrder {
  // Absent optional fields are left out, so {} and {"reference": null} are the same request.
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) as NewPaymentOrder;
}

export const orderIdParam = z.string().regex(idPattern(ORDER_ID_PREFIX));

export const listPaymentOrdersQuery = z.strictObject({
  status: z
    .string()
    .transform((s) => s.toUpperCase())
    .pipe(z.enum(ORDER_STATUSES, { error: `must be one of ${ORDER_STATUSES.join(', ')}` }))
    .optional(),
  limit: pageLimit,
  startingAfter: z.string().regex(idPattern(ORDER_ID_PREFIX), { error: 'must be a payment order id' }).optional(),
});
