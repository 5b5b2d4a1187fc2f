import { z } from 'zod';
import { DELIVERY_STATUSES } from '../../db/webhook-deliveries.repository.ts';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { attempt, orderStatus, paymentOrder, review, transition } from './responses.schema.ts';

/**
 * The operator console's two reads (src/http/routes/operator-console.routes.ts), for the OpenAPI
 * document; test/openapi.test.ts validates real answers against it.
 */

const dateTime = z.string().meta({ format: 'date-time' });
const seconds = z.int().nullable().meta({ description: 'Seconds, by the database clock; null when none waits.' });
const merchant = z.object({ id: z.string(), name: z.string() });

const orderSummary = z
  .object({
    id: z.string(),
    merchant,
    status: orderStatus,
    provider: z.string(),
    amount: z.int(),
    currency: z.string(),
    providerReference: z.string().nullable(),
    createdAt: dateTime,
    ageSeconds: z.int(),
    reconcilingSince: dateTime.nullable(),
    nextAttemptAt: dateTime.nullable(),
    review: z.object({ reason: z.string(), since: dateTime }).nullable(),
    lastCall: z
      .object({
        kind: z.string(),
        outcome: z.string().nullable(),
        httpStatus: z.int().nullable(),
        startedAt: dateTime,
        error: z.string().nullable(),
      })
      .nullable(),
  })
  .meta({ id: 'OperatorOrderSummary' });

const callCounts = {
  calls: z.int(),
  rateLimited: z.int().meta({ description: 'Answers 429.' }),
  errors: z.int().meta({ description: 'Errors, retries and unknown outcomes (429s not included).' }),
};

export const operatorOverview = z
  .object({
    object: z.literal('operator_overview'),
    generatedAt: dateTime,
    orders: z.object({
      pending: z.int(),
      processing: z.int(),
      reconciling: z.int(),
      underReview: z.int(),
      stuck: z.int(),
      recent: z.object({ minutes: z.int(), byStatus: z.record(orderStatus, z.int()) }),
      estimatedTotal: z.int().nullable().meta({ description: "The planner's estimate of all orders stored." }),
    }),
    stuck: z.object({ minutes: z.int(), total: z.int(), data: z.array(orderSummary) }),
    reconciling: z.object({ total: z.int(), data: z.array(orderSummary) }),
    underReview: z.object({
      total: z.int(),
      data: z.array(
        orderSummary.extend({
          reasons: z.array(z.string()),
          detail: z.string(),
          openedAt: dateTime,
          waitingSeconds: z.int(),
        }),
      ),
    }),
    providerCalls: z.object({
      from: dateTime,
      to: dateTime,
      bucketSeconds: z.int(),
      limits: z.object({
        callsPerSecond: z.number(),
        perProvider: z.record(z.string(), z.number()),
        windowMs: z.int(),
      }),
      total: z.object({ ...callCounts, peakInAnySecond: z.int() }),
      providers: z.array(
        z.object({
          provider: z.string(),
          limit: z.number().meta({ description: "The provider's own limit, else the whole gate's." }),
          ...callCounts,
          peakInAnySecond: z.int().meta({ description: 'The most calls started in any sliding second.' }),
          buckets: z.array(z.object({ start: dateTime, ...callCounts })),
        }),
      ),
    }),
    outbox: z.object({
      webhooks: z.object({
        unrelayed: z.int(),
        oldestUnrelayedSeconds: seconds,
        deliveriesPending: z.int(),
        oldestPendingSeconds: seconds,
        deliveriesDue: z.int(),
        oldestDueSeconds: seconds,
      }),
      kafka: z
        .object({ unpublished: z.int(), oldestUnpublishedSeconds: seconds, deadLettered: z.int() })
        .nullable()
        .meta({ description: 'null when Kafka is not configured.' }),
    }),
    subscriptions: z.object({
      total: z.int(),
      data: z.array(
        z.object({
          id: z.string(),
          merchant,
          url: z.string(),
          enabled: z.boolean(),
          disabledReason: z.string().nullable(),
          updatedAt: dateTime,
          failingDeliveries: z.int(),
          oldestFailingSeconds: seconds,
          lastStatusCode: z.int().nullable(),
          lastError: z.string().nullable(),
          lastFailureAt: dateTime.nullable(),
        }),
      ),
    }),
  })
  .meta({ id: 'OperatorOverview' });

export const orderStory = z
  .object({
    object: z.literal('payment_order_story'),
    order: paymentOrder.extend({ merchant }),
    history: z.array(transition),
    reviews: z.array(review),
    attempts: z.array(
      attempt.extend({
        idempotencyKey: z.string().nullable().meta({ description: 'The provider-side idempotency key it carried.' }),
        gateGrants: z.int(),
      }),
    ),
    attemptsTotal: z.int(),
    callbacks: z.array(
      z.object({
        provider: z.string(),
        externalId: z.string(),
        resultCode: z.string(),
        outcome: z.string(),
        amount: z.int().nullable(),
        receipt: z.string().nullable(),
        disposition: z
          .string()
          .meta({ description: 'What the gateway made of it (applied, confirmed, paid_after_failure, ...).' }),
        receivedAt: dateTime,
      }),
    ),
    events: z.array(
      z.object({
        id: z.string(),
        type: z.enum(EVENT_TYPES),
        createdAt: dateTime,
        relayedAt: dateTime.nullable(),
        kafka: z.object({
          publishedAt: dateTime.nullable(),
          deadAt: dateTime.nullable(),
          error: z.string().nullable(),
        }),
        deliveries: z.array(
          z.object({
            id: z.string(),
            subscriptionId: z.string(),
            url: z.string(),
            status: z.enum(DELIVERY_STATUSES),
            attemptCount: z.int(),
            nextAttemptAt: dateTime.nullable(),
            lastStatusCode: z.int().nullable(),
            lastError: z.string().nullable(),
            deliveredAt: dateTime.nullable(),
            createdAt: dateTime,
            updatedAt: dateTime,
            attempts: z.array(
              z.object({
                number: z.int(),
                startedAt: dateTime,
                endedAt: dateTime.nullable(),
                statusCode: z.int().nullable(),
                latencyMs: z.int().nullable(),
                error: z.string().nullable(),
              }),
            ),
          }),
        ),
      }),
    ),
  })
  .meta({ id: 'PaymentOrderStory', description: "One order's whole story, for operators." });
