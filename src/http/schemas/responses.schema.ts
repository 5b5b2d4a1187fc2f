import { z } from 'zod';
import { DELIVERY_STATUSES } from '../../db/webhook-deliveries.repository.ts';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { ORDER_STATUSES } from '../../domain/payment-order.ts';
import { ERROR_CODES } from '../../lib/error-codes.ts';

/**
 * The JSON the API answers, as zod schemas: the OpenAPI document's response schemas are generated
 * from these (src/http/openapi/document.ts). They describe what the routes build (domain/order-json.ts,
 * the route handlers); test/openapi.test.ts validates real responses against the generated document,
 * with undocumented fields refused, so a field added in a route and not here fails CI.
 */

// A plain string with its format: z.iso.datetime() would render a long regular expression.
const dateTime = z.string().meta({ format: 'date-time', example: '2026-12-02T09:30:00.000Z' });
const nullableDateTime = dateTime.nullable();

export const orderStatus = z.enum(ORDER_STATUSES).meta({
  id: 'PaymentOrderStatus',
  description:
    'PENDING: accepted, not yet sent. PROCESSING: with the provider (or retrying). COMPLETED and FAILED are final.',
});

export const paymentMethodOut = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('card'), token: z.string() }),
    z.object({ type: z.literal('mpesa'), phone: z.string().meta({ description: 'E.164 digits, without "+"' }) }),
  ])
  .meta({ id: 'PaymentMethod' });

export const paymentOrder = z
  .object({
    id: z.string().meta({ example: 'po_01kbd7d3x0m2rj6ay4q5vz8n9c' }),
    object: z.literal('payment_order'),
    status: orderStatus,
    amount: z.int().meta({ description: 'In minor units of the currency (cents, KES cents, yen).', example: 1999 }),
    currency: z.string().meta({ description: 'ISO 4217, upper case.', example: 'USD' }),
    provider: z.string().meta({ example: 'stripe' }),
    paymentMethod: paymentMethodOut.nullable(),
    reference: z.string().nullable(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
    providerReference: z
      .string()
      .nullable()
      .meta({ description: "The provider's id for the charge (Stripe PaymentIntent, M-Pesa CheckoutRequestID)." }),
    failure: z
      .object({ code: z.string(), message: z.string() })
      .nullable()
      .meta({ description: 'Why the order FAILED (a stable code and a message), else null.' }),
    nextAttemptAt: nullableDateTime.meta({ description: 'While PROCESSING: when the next provider call is due.' }),
    reconcilingSince: nullableDateTime.meta({
      description: 'Set when retries ran out while the provider may have charged: the outcome is being reconciled.',
    }),
    review: z
      .object({ reason: z.string(), since: dateTime })
      .nullable()
      .meta({ description: 'Set while people must look at the order (an outcome no machine can settle).' }),
    createdAt: dateTime,
    updatedAt: dateTime,
  })
  .meta({ id: 'PaymentOrder' });

export const attempt = z
  .object({
    number: z.int(),
    kind: z.enum(['charge', 'status', 'token']),
    provider: z.string(),
    startedAt: dateTime,
    endedAt: nullableDateTime,
    outcome: z.enum(['succeeded', 'declined', 'pending', 'retry', 'unknown', 'not_found', 'error']).nullable(),
    httpStatus: z.int().nullable(),
    latencyMs: z.int().nullable(),
    error: z.string().nullable(),
    providerReference: z.string().nullable(),
  })
  .meta({ id: 'ProviderAttempt', description: 'One call to the provider.' });

export const transition = z
  .object({ from: orderStatus.nullable(), to: orderStatus, reason: z.string(), at: dateTime })
  .meta({ id: 'Transition' });

export const review = z
  .object({
    reason: z.string(),
    detail: z.string(),
    openedAt: dateTime,
    resolvedAt: nullableDateTime,
    resolvedBy: z.string().nullable(),
    resolution: z.string().nullable(),
    note: z.string().nullable(),
  })
  .meta({ id: 'Review' });

export const paymentOrderDetail = paymentOrder
  .extend({ attempts: z.array(attempt), history: z.array(transition), reviews: z.array(review) })
  .meta({ id: 'PaymentOrderDetail', description: 'An order with its provider calls, its history and its reviews.' });

/** A cursor-paginated list, like Stripe's: pass nextStartingAfter as startingAfter for the next page. */
export const listOf = <T extends z.ZodType>(item: T, id: string) =>
  z
    .object({
      object: z.literal('list'),
      data: z.array(item),
      hasMore: z.boolean(),
      nextStartingAfter: z.string().nullable(),
    })
    .meta({ id });

export const fieldError = z
  .object({
    path: z.string().meta({ description: 'Dotted path of the field; "" for the whole body.', example: 'amount' }),
    code: z.string().meta({ example: 'too_small' }),
    message: z.string().meta({ example: 'must be at least 1' }),
  })
  .meta({ id: 'FieldError' });

export const problem = z
  .object({
    type: z.string().meta({
      description: 'A URI reference to a page explaining the code: /problems/{code}.',
      example: '/problems/validation_failed',
    }),
    title: z.string(),
    status: z.int(),
    code: z.enum(ERROR_CODES).meta({ description: 'Stable: switch on this, not on the title or detail.' }),
    detail: z.string(),
    errors: z.array(fieldError).optional().meta({ description: 'validation_failed: one entry per field.' }),
    param: z.string().optional().meta({ description: 'The request field the problem is about, when there is one.' }),
    providers: z
      .array(z.string())
      .optional()
      .meta({ description: 'unknown_provider: the providers this gateway routes to.' }),
    resource: z.string().optional().meta({ description: 'resource_missing: what was not found.' }),
    requestId: z
      .string()
      .optional()
      .meta({ description: "The request's id, as in the gateway's logs: quote it when you ask about a request." }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details, served as application/problem+json.' });

export const subscription = z
  .object({
    id: z.string().meta({ example: 'whs_01kbd7d3x0m2rj6ay4q5vz8n9c' }),
    object: z.literal('webhook_subscription'),
    url: z.url(),
    events: z.array(z.enum(EVENT_TYPES)),
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    createdAt: dateTime,
    updatedAt: dateTime,
  })
  .meta({ id: 'WebhookSubscription' });

export const subscriptionWithSecret = subscription
  .extend({
    secret: z.string().meta({
      description: 'The signing secret (whsec_...): shown on creation and after a rotation, never again.',
      example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    }),
  })
  .meta({ id: 'WebhookSubscriptionWithSecret' });

export const operatorSubscription = subscription
  .extend({ merchantId: z.string().meta({ description: 'Operators see every merchant: whose it is.' }) })
  .meta({ id: 'OperatorWebhookSubscription' });

export const deletedSubscription = z
  .object({ id: z.string(), object: z.literal('webhook_subscription'), deleted: z.literal(true) })
  .meta({ id: 'DeletedWebhookSubscription' });

export const deliveryAttempt = z
  .object({
    number: z.int(),
    at: dateTime,
    statusCode: z.int().nullable(),
    latencyMs: z.int().nullable(),
    error: z.string().nullable(),
  })
  .meta({ id: 'WebhookDeliveryAttempt' });

export const delivery = z
  .object({
    id: z.string(),
    object: z.literal('webhook_delivery'),
    eventId: z.string(),
    eventType: z.enum(EVENT_TYPES),
    status: z.enum(DELIVERY_STATUSES).meta({
      description:
        'pending (being sent or waiting for its next retry), delivered, dead (every retry failed), cancelled (the endpoint was turned off).',
    }),
    attemptCount: z.int(),
    nextAttemptAt: nullableDateTime,
    lastStatusCode: z.int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: nullableDateTime,
    createdAt: dateTime,
    attempts: z.array(deliveryAttempt),
  })
  .meta({ id: 'WebhookDelivery' });

const eventId = z.string().meta({
  description: 'The event id, also the webhook-id header: the same on every retry. Dedupe on it.',
  example: 'evt_01kbd7d3x0m2rj6ay4q5vz8n9c',
});

const ORDER_EVENT_TYPES = EVENT_TYPES.filter((type) => type.startsWith('payment_order.'));
const SUBSCRIPTION_EVENT_TYPES = EVENT_TYPES.filter((type) => type.startsWith('webhook_subscription.'));

/** An event about an order: its data is the order as it was when the event was written. */
export const orderEventBody = z
  .object({ id: eventId, type: z.enum(ORDER_EVENT_TYPES), createdAt: dateTime, data: paymentOrder })
  .meta({ id: 'PaymentOrderEventBody' });

/** An event about an endpoint (the gateway switched it off): its data is the subscription, no secret. */
export const subscriptionEventBody = z
  .object({ id: eventId, type: z.enum(SUBSCRIPTION_EVENT_TYPES), createdAt: dateTime, data: subscription })
  .meta({ id: 'WebhookSubscriptionEventBody' });

/** The body of every event: the webhook body and the Kafka value alike (domain/event-body.ts). */
export const eventBody = z.union([orderEventBody, subscriptionEventBody]).meta({ id: 'EventBody' });

export const event = z
  .union([
    orderEventBody.extend({ object: z.literal('event') }),
    subscriptionEventBody.extend({ object: z.literal('event') }),
  ])
  .meta({ id: 'Event' });

export const redeliveries = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ id: z.string(), status: z.literal('pending') })),
  })
  .meta({ id: 'Redeliveries', description: 'The deliveries sent again, each back to pending.' });

export const replayed = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        id: z.string(),
        object: z.literal('webhook_delivery'),
        eventId: z.string(),
        status: z.literal('pending'),
      }),
    ),
    count: z.int(),
    limit: z
      .int()
      .meta({ description: 'The most one call replays; pass nextStartingAfter as startingAfter for more.' }),
    hasMore: z.boolean(),
    nextStartingAfter: z.string().nullable(),
  })
  .meta({ id: 'WebhookReplay' });

export const testResult = z
  .object({
    object: z.literal('webhook_test'),
    subscriptionId: z.string(),
    eventId: z.string(),
    type: z.literal('webhook.test'),
    delivered: z.boolean().meta({ description: 'The endpoint answered 2xx.' }),
    statusCode: z.int().nullable(),
    latencyMs: z.int(),
    error: z.string().nullable().meta({ example: 'HTTP 500' }),
  })
  .meta({ id: 'WebhookTestResult' });

export const health = z.object({ status: z.literal('ok'), version: z.string() }).meta({ id: 'Health' });
export const ready = z.object({ status: z.literal('ready') }).meta({ id: 'Ready' });

export const mpesaAcknowledgement = z
  .object({ ResultCode: z.literal(0), ResultDesc: z.enum(['Accepted', 'Received']) })
  .meta({ id: 'MpesaAcknowledgement', description: "Daraja's documented acknowledgement." });
