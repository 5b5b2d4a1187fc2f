import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import type { ErrorCode } from '../../lib/error-codes.ts';
import { VERSION } from '../../lib/version.ts';
import { stkCallbackBody } from '../../providers/mpesa.ts';
import { PROBLEMS } from '../problem.ts';
import { listEventsQuery } from '../routes/events.routes.ts';
import { resolveBody } from '../routes/operator.routes.ts';
import { overviewQuery } from '../routes/operator-console.routes.ts';
import {
  createBody as createSubscriptionBody,
  listDeliveriesQuery,
  replayBody,
  testBody,
  updateBody as updateSubscriptionBody,
} from '../routes/webhook-subscriptions.routes.ts';
import { operatorOverview, orderStory } from '../schemas/operator-console.schema.ts';
import { createPaymentOrderBody, listPaymentOrdersQuery } from '../schemas/payment-order.schema.ts';
import { redeliverBody } from '../schemas/redeliver.schema.ts';
import * as out from '../schemas/responses.schema.ts';

/**
 * The OpenAPI 3.1 document of the API, generated from the zod schemas the routes validate with
 * (requests) and from src/http/schemas/responses.schema.ts (responses). `npm run openapi` writes it
 * to openapi.json; GET /openapi.json serves it; test/openapi.test.ts checks that it validates, that
 * it names every Express route and nothing else, and that real responses match it.
 */

const json = (schema: z.ZodType) => ({ 'application/json': { schema } });

/** The problem responses an operation can give, grouped by status, each listing its codes. */
function problems(...codes: ErrorCode[]): ZodOpenApiResponsesObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, 'database_unavailable' as const]) {
    const status = PROBLEMS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: ZodOpenApiResponsesObject = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[`${status}` as '400'] = {
      description: list.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('; '),
      ...(status === 503
        ? { headers: z.object({ 'Retry-After': z.string().meta({ description: 'Seconds to wait before retrying.' }) }) }
        : {}),
      content: { 'application/problem+json': { schema: out.problem } },
    };
  }
  return responses;
}

const merchant = [{ merchantKey: [] }];
const operator = [{ operatorKey: [] }];
const publicRoute: [] = [];
const MERCHANT_AUTH: ErrorCode[] = ['authentication_required', 'invalid_api_key'];
const OPERATOR_AUTH: ErrorCode[] = ['authentication_required', 'invalid_api_key', 'operator_key_required'];
const JSON_BODY: ErrorCode[] = ['malformed_json', 'payload_too_large', 'unsupported_media_type', 'validation_failed'];

const id = (prefix: string, what: string) =>
  z
    .string()
    .meta({ description: `The ${what}'s id (${prefix}_...).`, example: `${prefix}_01kbd7d3x0m2rj6ay4q5vz8n9c` });

const orderPath = { path: z.object({ id: id('po', 'payment order') }) };
const subscriptionPath = { path: z.object({ id: id('whs', 'webhook subscription') }) };
const eventPath = { path: z.object({ id: id('evt', 'event') }) };

const idempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x20-\x7e]+$/)
  .meta({
    description:
      'Makes the create safe to retry: the same key with the same body returns the first answer (with Idempotent-Replayed: true), with another body 422. Kept at least 24 hours.',
    example: 'order-7f3e2c1a',
  });

const metadataSchema = {
  type: 'object',
  maxProperties: 50,
  propertyNames: { minLength: 1, maxLength: 40 },
  additionalProperties: { type: 'string', maxLength: 500 },
  description: 'Up to 50 string keys (1–40 characters) to string values (at most 500 characters), stored as given.',
} as const;

/** The request body of a create, with metadata described as what it accepts (it is checked by hand). */
const createOrderRequest = createPaymentOrderBody.meta({
  id: 'CreatePaymentOrder',
  override: ({ jsonSchema }) => {
    const properties = jsonSchema.properties as Record<string, unknown>;
    properties.metadata = { anyOf: [metadataSchema, { type: 'null' }] };
    properties.currency = {
      type: 'string',
      pattern: '^[A-Za-z]{3}$',
      description: 'An ISO 4217 code (any case; stored upper case). The provider must support it.',
      example: 'USD',
    };
  },
});

/**
 * A list's query as the wire has it: `limit` is a string of digits (the route turns it into a
 * number, which a generated schema would describe as the number). Only for the document.
 */
const limitParam = z
  .string()
  .regex(/^\d{1,3}$/)
  .optional()
  .meta({ description: '1 to 100; 10 by default.', example: '10' });
const wholeNumber = (description: string) =>
  z
    .string()
    .regex(/^\d{1,5}$/)
    .optional()
    .meta({ description });
const pagedLimit = <T extends z.ZodObject>(query: T, more: z.ZodRawShape = {}) =>
  query.extend({ limit: limitParam, ...more });

const listOrdersParams = pagedLimit(listPaymentOrdersQuery, {
  status: z.string().optional().meta({ description: 'PENDING, PROCESSING, COMPLETED or FAILED (any case).' }),
});
const listEventsParams = pagedLimit(listEventsQuery);

const webhookHeaders = z.object({
  'webhook-id': z.string().meta({ description: 'The event id: the same on every retry. Dedupe on it.' }),
  'webhook-timestamp': z.string().meta({ description: 'Unix seconds when this attempt was signed.' }),
  'webhook-signature': z.string().meta({
    description:
      'Space-separated `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}">`, one per active secret (two during a rotation).',
  }),
});

function webhookOperation(type: (typeof EVENT_TYPES)[number]): ZodOpenApiOperationObject {
  return {
    operationId: `webhook_${type.replace('.', '_')}`,
    summary: type,
    description:
      'POSTed to every enabled subscription that wants this type, signed per Standard Webhooks. Verify the signature on the raw body, answer 2xx quickly, dedupe on webhook-id. Any other status or a timeout is retried (about 3 days); 410 Gone turns the subscription off. See /docs/receiving-events.',
    requestParams: { header: webhookHeaders },
    // A reference to the component, rendered once as a response schema: a zod schema here would
    // render a second, input-side copy of each schema it holds.
    requestBody: {
      content: {
        'application/json': {
          schema: {
            $ref: `#/components/schemas/${type.startsWith('payment_order.') ? 'PaymentOrderEventBody' : 'WebhookSubscriptionEventBody'}`,
          },
        },
      },
    },
    responses: {
      '2XX': { description: 'Received. Anything else is a failure and is retried.' },
      '410': { description: 'Gone: the gateway disables this subscription.' },
    },
  };
}

export function buildOpenApiDocument() {
  return createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'Payment order gateway',
        version: VERSION,
        description: [
          'Durable payment orders sent to Stripe and M-Pesa under one global rate limit, with',
          'safe retries, status, and reliable events (signed webhooks, Kafka).',
          '',
          'Authenticate with `Authorization: Bearer sk_...` (a merchant key from `npm run keys -- create <merchant>`);',
          'operator routes take an operator key (`op_...`, `npm run keys -- create-operator <name>`).',
          'Errors are RFC 9457 `application/problem+json` with a stable `code`; each `type` is a page: `/problems/{code}`.',
          'Receiving events: [/docs/receiving-events](/docs/receiving-events).',
        ].join('\n'),
      },
      servers: [{ url: '/', description: 'This gateway' }],
      tags: [
        { name: 'Payment orders' },
        { name: 'Webhook subscriptions' },
        { name: 'Events' },
        { name: 'Operators', description: 'Operator key (op_...) routes.' },
        { name: 'Callbacks', description: 'Called by providers, not by merchants.' },
        { name: 'Service', description: 'Health, metrics and documentation; no key.' },
      ],
      security: merchant,
      components: {
        schemas: { EventBody: out.eventBody },
        securitySchemes: {
          merchantKey: { type: 'http', scheme: 'bearer', description: 'A merchant API key, sk_...' },
          operatorKey: { type: 'http', scheme: 'bearer', description: 'An operator key, op_...' },
        },
      },
      paths: {
        '/payment-orders': {
          post: {
            operationId: 'createPaymentOrder',
            tags: ['Payment orders'],
            summary: 'Create a payment order',
            description:
              'Stores the order durably and queues it for its provider; the answer is 201 with the order PENDING. Retry with the same Idempotency-Key until you get an answer.',
            requestParams: { header: z.object({ 'Idempotency-Key': idempotencyKey }) },
            requestBody: { required: true, content: json(createOrderRequest) },
            responses: {
              '201': {
                description: 'Created (or, with Idempotent-Replayed: true, the first answer to this key).',
                headers: z.object({
                  Location: z.string().meta({ description: '/payment-orders/{id}' }),
                  'Idempotent-Replayed': z
                    .literal('true')
                    .optional()
                    .meta({ description: 'Present when this is the saved answer of an earlier request.' }),
                }),
                content: json(out.paymentOrderDetail),
              },
              ...problems(
                ...JSON_BODY,
                ...MERCHANT_AUTH,
                'idempotency_key_missing',
                'idempotency_key_invalid',
                'unknown_provider',
                'payment_method_unsupported',
                'currency_unsupported',
                'amount_invalid',
                'idempotency_key_reused',
              ),
            },
          },
          get: {
            operationId: 'listPaymentOrders',
            tags: ['Payment orders'],
            summary: 'List payment orders, newest first',
            requestParams: { query: listOrdersParams },
            responses: {
              '200': {
                description: 'A page of orders.',
                content: json(out.listOf(out.paymentOrder, 'PaymentOrderList')),
              },
              ...problems('validation_failed', ...MERCHANT_AUTH),
            },
          },
        },
        '/payment-orders/{id}': {
          get: {
            operationId: 'getPaymentOrder',
            tags: ['Payment orders'],
            summary: 'Get a payment order with its attempts, history and reviews',
            requestParams: orderPath,
            responses: {
              '200': { description: 'The order.', content: json(out.paymentOrderDetail) },
              ...problems('resource_missing', ...MERCHANT_AUTH),
            },
          },
        },
        '/payment-orders/{id}/resolve': {
          post: {
            operationId: 'resolvePaymentOrder',
            tags: ['Operators'],
            summary: 'Settle an order under review',
            description:
              "An operator, having checked with the provider, says how an order under review ended. Any merchant's order.",
            security: operator,
            requestParams: orderPath,
            requestBody: { required: true, content: json(resolveBody.meta({ id: 'ResolvePaymentOrder' })) },
            responses: {
              '200': { description: 'The order, now final.', content: json(out.paymentOrder) },
              ...problems(
                ...JSON_BODY,
                ...OPERATOR_AUTH,
                'resource_missing',
                'order_not_under_review',
                'order_terminal',
                'order_busy',
              ),
            },
          },
        },
        '/operator/overview': {
          get: {
            operationId: 'operatorOverview',
            tags: ['Operators'],
            summary: 'What is stuck, what is failing, how fast the providers are called',
            description:
              "The console's overview, read in one snapshot: orders by status (in flight, and the recent window), the stuck, reconciling and under-review ones, provider calls per bucket against the gate's limit with 429s and errors, outbox lag for webhooks and Kafka, and failing or disabled subscriptions. Every merchant.",
            security: operator,
            requestParams: {
              query: overviewQuery.extend({
                stuckMinutes: wholeNumber(
                  'A PENDING or PROCESSING order older than this is stuck (1–10080, default 5).',
                ),
                rateMinutes: wholeNumber("The provider-call chart's span (1–60, default 10)."),
                recentMinutes: wholeNumber(
                  'Orders by status counts the orders created in this window (1–1440, default 60).',
                ),
                limit: wholeNumber('Rows per list (1–100, default 20).'),
              }),
            },
            responses: {
              '200': { description: 'The overview.', content: json(operatorOverview) },
              ...problems('validation_failed', ...OPERATOR_AUTH),
            },
          },
        },
        '/operator/payment-orders/{id}': {
          get: {
            operationId: 'operatorPaymentOrderStory',
            tags: ['Operators'],
            summary: "Any merchant's order with its whole story",
            description:
              "Transitions, provider calls (with their idempotency keys), reviews, callbacks, events and each event's deliveries with their attempts.",
            security: operator,
            requestParams: orderPath,
            responses: {
              '200': { description: 'The story.', content: json(orderStory) },
              ...problems('resource_missing', ...OPERATOR_AUTH),
            },
          },
        },
        '/operator/events/{id}/redeliver': {
          post: {
            operationId: 'operatorRedeliverEvent',
            tags: ['Operators'],
            summary: "Send any merchant's event again, now",
            description:
              "As POST /events/{id}/redeliver, for operators (the console and `npm run ops -- redeliver` call it): to one subscription of the event's merchant, or (no body) to every enabled one that wants its type.",
            security: operator,
            requestParams: eventPath,
            requestBody: { required: false, content: json(redeliverBody) },
            responses: {
              '202': { description: 'The deliveries, back to pending.', content: json(out.redeliveries) },
              ...problems(...JSON_BODY, ...OPERATOR_AUTH, 'resource_missing'),
            },
          },
        },
        '/operator/webhook-subscriptions/{id}/enable': {
          post: {
            operationId: 'operatorEnableWebhookSubscription',
            tags: ['Operators'],
            summary: 'Turn an endpoint on again (after a 410 or automatic disabling)',
            description:
              'Clears `disabledReason` and restarts the failure clock of automatic disabling. The console and `npm run ops -- reenable` call it.',
            security: operator,
            requestParams: subscriptionPath,
            responses: {
              '200': { description: 'The subscription, enabled.', content: json(out.operatorSubscription) },
              ...problems(...OPERATOR_AUTH, 'resource_missing'),
            },
          },
        },
        '/webhook-subscriptions': {
          post: {
            operationId: 'createWebhookSubscription',
            tags: ['Webhook subscriptions'],
            summary: 'Subscribe an endpoint to events',
            requestBody: {
              required: true,
              content: json(createSubscriptionBody.meta({ id: 'CreateWebhookSubscription' })),
            },
            responses: {
              '201': {
                description: 'Created; the secret is shown only here and after a rotation.',
                headers: z.object({ Location: z.string() }),
                content: json(out.subscriptionWithSecret),
              },
              ...problems(...JSON_BODY, ...MERCHANT_AUTH, 'url_not_allowed'),
            },
          },
          get: {
            operationId: 'listWebhookSubscriptions',
            tags: ['Webhook subscriptions'],
            summary: "List the merchant's subscriptions",
            responses: {
              '200': {
                description: 'Every subscription (one page).',
                content: json(
                  z
                    .object({ object: z.literal('list'), data: z.array(out.subscription), hasMore: z.literal(false) })
                    .meta({ id: 'WebhookSubscriptionList' }),
                ),
              },
              ...problems(...MERCHANT_AUTH),
            },
          },
        },
        '/webhook-subscriptions/{id}': {
          get: {
            operationId: 'getWebhookSubscription',
            tags: ['Webhook subscriptions'],
            summary: 'Get a subscription',
            requestParams: subscriptionPath,
            responses: {
              '200': { description: 'The subscription.', content: json(out.subscription) },
              ...problems('resource_missing', ...MERCHANT_AUTH),
            },
          },
          patch: {
            operationId: 'updateWebhookSubscription',
            tags: ['Webhook subscriptions'],
            summary: 'Change the URL or the events, or turn the endpoint off or on again',
            requestParams: subscriptionPath,
            requestBody: {
              required: true,
              content: json(updateSubscriptionBody.meta({ id: 'UpdateWebhookSubscription' })),
            },
            responses: {
              '200': { description: 'The subscription as changed.', content: json(out.subscription) },
              ...problems(...JSON_BODY, ...MERCHANT_AUTH, 'resource_missing', 'url_not_allowed'),
            },
          },
          delete: {
            operationId: 'deleteWebhookSubscription',
            tags: ['Webhook subscriptions'],
            summary: 'Delete a subscription',
            requestParams: subscriptionPath,
            responses: {
              '200': { description: 'Deleted.', content: json(out.deletedSubscription) },
              ...problems('resource_missing', ...MERCHANT_AUTH),
            },
          },
        },
        '/webhook-subscriptions/{id}/rotate-secret': {
          post: {
            operationId: 'rotateWebhookSecret',
            tags: ['Webhook subscriptions'],
            summary: 'Rotate the signing secret',
            description:
              'The old secret keeps signing too (two signatures per delivery) for WEBHOOK_SECRET_ROTATION_HOURS, so receivers can switch without a gap.',
            requestParams: subscriptionPath,
            responses: {
              '200': {
                description: 'The subscription with its new secret.',
                content: json(out.subscriptionWithSecret),
              },
              ...problems('resource_missing', ...MERCHANT_AUTH),
            },
          },
        },
        '/webhook-subscriptions/{id}/deliveries': {
          get: {
            operationId: 'listWebhookDeliveries',
            tags: ['Webhook subscriptions'],
            summary: "A subscription's deliveries, newest first, with their attempts",
            requestParams: { ...subscriptionPath, query: pagedLimit(listDeliveriesQuery) },
            responses: {
              '200': {
                description: 'A page of deliveries.',
                content: json(out.listOf(out.delivery, 'WebhookDeliveryList')),
              },
              ...problems('validation_failed', 'resource_missing', ...MERCHANT_AUTH),
            },
          },
        },
        '/webhook-subscriptions/{id}/test': {
          post: {
            operationId: 'testWebhookSubscription',
            tags: ['Webhook subscriptions'],
            summary: 'Send a signed test event to the endpoint now',
            description:
              'A `webhook.test` event, signed like every delivery, sent once to this endpoint only: never stored, listed, retried or sent to Kafka, and its outcome (200 whatever the endpoint said) neither disables nor counts against the endpoint.',
            requestParams: subscriptionPath,
            requestBody: { required: false, content: json(testBody.meta({ id: 'WebhookTest' })) },
            responses: {
              '200': { description: 'What the endpoint answered.', content: json(out.testResult) },
              ...problems(...JSON_BODY, ...MERCHANT_AUTH, 'resource_missing'),
            },
          },
        },
        '/webhook-subscriptions/{id}/replay': {
          post: {
            operationId: 'replayWebhookDeliveries',
            tags: ['Webhook subscriptions'],
            summary: 'Send again what an endpoint did not get since a time: dead, cancelled and missed deliveries',
            description:
              'Each goes back to pending with its next attempt due now, in one transaction; at most `limit` per call, oldest event first (`startingAfter` for the next page). Events the endpoint missed while it was switched off are included: the call writes their deliveries first.',
            requestParams: subscriptionPath,
            requestBody: { required: true, content: json(replayBody.meta({ id: 'WebhookReplayRequest' })) },
            responses: {
              '202': { description: 'The deliveries now pending.', content: json(out.replayed) },
              ...problems(...JSON_BODY, ...MERCHANT_AUTH, 'resource_missing', 'subscription_disabled'),
            },
          },
        },
        '/events': {
          get: {
            operationId: 'listEvents',
            tags: ['Events'],
            summary: 'The event log, newest first',
            description: 'For consumers that poll or catch up after downtime; the same bodies as the webhooks.',
            requestParams: { query: listEventsParams },
            responses: {
              '200': { description: 'A page of events.', content: json(out.listOf(out.event, 'EventList')) },
              ...problems('validation_failed', ...MERCHANT_AUTH),
            },
          },
        },
        '/events/{id}': {
          get: {
            operationId: 'getEvent',
            tags: ['Events'],
            summary: 'Get an event',
            requestParams: eventPath,
            responses: {
              '200': { description: 'The event.', content: json(out.event) },
              ...problems('resource_missing', ...MERCHANT_AUTH),
            },
          },
        },
        '/events/{id}/redeliver': {
          post: {
            operationId: 'redeliverEvent',
            tags: ['Events'],
            summary: 'Send an event again, now',
            description:
              'To one subscription, or (no body) to every enabled subscription that wants its type. The body is optional.',
            requestParams: eventPath,
            requestBody: { required: false, content: json(redeliverBody.meta({ id: 'Redeliver' })) },
            responses: {
              '202': { description: 'The deliveries, back to pending.', content: json(out.redeliveries) },
              ...problems(...JSON_BODY, ...MERCHANT_AUTH, 'resource_missing'),
            },
          },
        },
        '/callbacks/mpesa/{token}': {
          post: {
            operationId: 'mpesaCallback',
            tags: ['Callbacks'],
            summary: "M-Pesa STK push result (Daraja's CallBackURL)",
            description:
              'Evidence, recorded and applied once confirmed with a status query. The token in the path is the unguessable per-order token the gateway put in CallBackURL.',
            security: publicRoute,
            requestParams: { path: z.object({ token: z.string().meta({ description: '32 base64url characters.' }) }) },
            requestBody: { required: true, content: json(stkCallbackBody.meta({ id: 'MpesaStkCallback' })) },
            responses: {
              '200': { description: 'Acknowledged.', content: json(out.mpesaAcknowledgement) },
              ...problems(...JSON_BODY, 'resource_missing'),
            },
          },
        },
        '/healthz': {
          get: {
            operationId: 'health',
            tags: ['Service'],
            summary: 'The process is up',
            security: publicRoute,
            responses: { '200': { description: 'Up.', content: json(out.health) } },
          },
        },
        '/readyz': {
          get: {
            operationId: 'ready',
            tags: ['Service'],
            summary: 'The database answers within 2 s',
            security: publicRoute,
            responses: { '200': { description: 'Ready.', content: json(out.ready) }, ...problems() },
          },
        },
        '/metrics': {
          get: {
            operationId: 'metrics',
            tags: ['Service'],
            summary: 'Prometheus metrics (aggregates only, no merchant data)',
            security: publicRoute,
            responses: {
              '200': {
                description: "Prometheus's text exposition format.",
                content: { 'text/plain': { schema: z.string() } },
              },
            },
          },
        },
        '/openapi.json': {
          get: {
            operationId: 'openapi',
            tags: ['Service'],
            summary: 'This document',
            security: publicRoute,
            responses: {
              '200': {
                description: 'OpenAPI 3.1.',
                content: { 'application/json': { schema: { type: 'object' } } },
              },
            },
          },
        },
        '/docs': {
          get: {
            operationId: 'docs',
            tags: ['Service'],
            summary: 'This document, as a page (Swagger UI, served by the gateway itself)',
            security: publicRoute,
            responses: { '200': { description: 'HTML.', content: { 'text/html': { schema: z.string() } } } },
          },
        },
        '/docs/receiving-events': {
          get: {
            operationId: 'docsReceivingEvents',
            tags: ['Service'],
            summary: 'The guide to receiving webhooks',
            security: publicRoute,
            responses: { '200': { description: 'HTML.', content: { 'text/html': { schema: z.string() } } } },
          },
        },
        '/problems': {
          get: {
            operationId: 'problemTypes',
            tags: ['Service'],
            summary: 'Every problem code, with its status and title',
            security: publicRoute,
            responses: { '200': { description: 'HTML.', content: { 'text/html': { schema: z.string() } } } },
          },
        },
        '/problems/{code}': {
          get: {
            operationId: 'problemType',
            tags: ['Service'],
            summary: "The page a problem's `type` points to: what the code means and what to do",
            security: publicRoute,
            requestParams: { path: z.object({ code: z.string().meta({ example: 'validation_failed' }) }) },
            responses: {
              '200': { description: 'HTML.', content: { 'text/html': { schema: z.string() } } },
              ...problems('resource_missing'),
            },
          },
        },
      },
      webhooks: Object.fromEntries(EVENT_TYPES.map((type) => [type, { post: webhookOperation(type) }])),
    },
    {
      // One component per schema: responses and the webhook payload render the same way.
      outputIdSuffix: '',
      // Responses are open (fields may be added in a minor version, as Stripe does); requests stay
      // closed (unknown fields are refused). test/openapi.test.ts checks responses closed.
      override: ({ jsonSchema, io }) => {
        if (io === 'output' && jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
      },
    },
  );
}
