import { Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/connection.ts';
import { DELIVERY_STATUSES, listDeliveries } from '../../db/webhook-deliveries.repository.ts';
import {
  currentSecret,
  deleteSubscription,
  findSubscription,
  insertSubscription,
  listSubscriptions,
  rotateSecret,
  type Subscription,
  updateSubscription,
} from '../../db/webhook-subscriptions.repository.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { idPattern } from '../../lib/ids.ts';
import type { EnqueueDelivery } from '../../outbox/relay.ts';
import { REPLAY_PAGE_SIZE, replayDeliveries } from '../../webhooks/replay.ts';
import { newWebhookSecret } from '../../webhooks/signing.ts';
import { subscriptionJson } from '../../webhooks/subscription-json.ts';
import { sendTestEvent } from '../../webhooks/test-event.ts';
import { checkWebhookUrl, type UrlPolicy } from '../../webhooks/url-policy.ts';
import { jsonBody } from '../middleware.ts';
import { optionalJsonBody } from '../optional-json-body.ts';
import { HttpError, validationProblem } from '../problem.ts';
import { pageLimit } from '../schemas/page-limit.schema.ts';

export { subscriptionJson };

const url = z.string().min(1).max(2048);
const events = z
  .array(z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }))
  .min(1)
  .refine((types) => new Set(types).size === types.length, { error: 'must not repeat an event type' });
export const createBody = z.strictObject({ url, events: events.optional() });
/** PATCH: any of the three; `enabled: true` turns on an endpoint that was turned off (after a 410, say). */
export const updateBody = z
  .strictObject({ url: url.optional(), events: events.optional(), enabled: z.boolean().optional() })
  .refine((body) => Object.keys(body).length > 0, { error: 'send at least one of url, events, enabled' });

const subscriptionId = idPattern('whs');
const deliveryId = z.string().regex(idPattern('whd'), { error: 'must be a webhook delivery id' });

/** GET /webhook-subscriptions/{id}/deliveries: the filters and the page, as GET /events takes them. */
export const listDeliveriesQuery = z.strictObject({
  status: z.enum(DELIVERY_STATUSES, { error: `must be one of ${DELIVERY_STATUSES.join(', ')}` }).optional(),
  eventType: z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }).optional(),
  limit: pageLimit,
  startingAfter: deliveryId.optional(),
});

/** An RFC 3339 date-time with its offset ("2026-12-01T00:00:00Z", "...+03:00"); kept a string for the document. */
const timestamp = z.iso.datetime({
  offset: true,
  error: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T00:00:00Z',
});

/**
 * POST /webhook-subscriptions/{id}/replay: the dead and cancelled deliveries of events created in
 * [since, until); `startingAfter` (the previous answer's nextStartingAfter) takes the next page.
 */
export const replayBody = z
  .strictObject({ since: timestamp, until: timestamp.optional(), startingAfter: deliveryId.optional() })
  .refine((body) => body.until === undefined || Date.parse(body.until) > Date.parse(body.since), {
    error: 'must be later than since',
    path: ['until'],
  });

/** POST /webhook-subscriptions/{id}/test: no body, or an empty object (room for options later). */
export const testBody = z.strictObject({}).optional();

export type WebhookRoutesDeps = Readonly<{
  db: Db;
  urlPolicy: UrlPolicy;
  secretRotationMs: number;
  /** A test event's request timeout: the deliveries' (WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** A replayed delivery's next attempt, in the replay's transaction. */
  enqueue: EnqueueDelivery;
}>;

/** Carries a ready validation problem (with its field errors) to the error handler. */
function validationFailed(error: z.ZodError, where: 'body' | 'query'): HttpError {
  const problem = validationProblem(error, where);
  return new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
}

export function webhookSubscriptionRoutes(deps: WebhookRoutesDeps): Router {
  const router = Router();
  const { db } = deps;

  const load = async (merchantId: string, id: string): Promise<Subscription> => {
    const found = subscriptionId.test(id) ? await findSubscription(db, merchantId, id) : null;
    if (!found) throw new NotFoundError('webhook subscription', id);
    return found;
  };

  router.post('/webhook-subscriptions', ...jsonBody(), async (req, res) => {
    const parsed = createBody.safeParse(req.body);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'body');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    const refusal = checkWebhookUrl(parsed.data.url, deps.urlPolicy);
    if (refusal) throw new HttpError('url_not_allowed', refusal, { details: { param: 'url' } });
    const secret = newWebhookSecret();
    // Stored as the URL parser writes it (trimmed, canonical host), which is what was checked.
    const url = new URL(parsed.data.url.trim()).href;
    const created = await insertSubscription(db, res.locals.merchantId, url, parsed.data.events ?? EVENT_TYPES, secret);
    res.status(201).location(`/webhook-subscriptions/${created.id}`);
    // The secret is shown here and after a rotation, never again.
    res.json({ ...subscriptionJson(created), secret });
  });

  router.get('/webhook-subscriptions', async (_req, res) => {
    const subscriptions = await listSubscriptions(db, res.locals.merchantId);
    res.json({ object: 'list', data: subscriptions.map(subscriptionJson), hasMore: false });
  });

  router.get('/webhook-subscriptions/:id', async (req, res) => {
    res.json(subscriptionJson(await load(res.locals.merchantId, String(req.params.id))));
  });

  router.patch('/webhook-subscriptions/:id', ...jsonBody(), async (req, res) => {
    const id = String(req.params.id);
    await load(res.locals.merchantId, id);
    const parsed = updateBody.safeParse(req.body);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'body');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    let checkedUrl: string | undefined;
    if (parsed.data.url !== undefined) {
      const refusal = checkWebhookUrl(parsed.data.url, deps.urlPolicy);
      if (refusal) throw new HttpError('url_not_allowed', refusal, { details: { param: 'url' } });
      checkedUrl = new URL(parsed.data.url.trim()).href;
    }
    const updated = await updateSubscription(db, res.locals.merchantId, id, {
      ...(checkedUrl === undefined ? {} : { url: checkedUrl }),
      ...(parsed.data.events === undefined ? {} : { events: parsed.data.events }),
      ...(parsed.data.enabled === undefined ? {} : { enabled: parsed.data.enabled }),
    });
    if (!updated) throw new NotFoundError('webhook subscription', id);
    res.json(subscriptionJson(updated));
  });

  router.delete('/webhook-subscriptions/:id', async (req, res) => {
    const id = String(req.params.id);
    if (!subscriptionId.test(id) || !(await deleteSubscription(db, res.locals.merchantId, id))) {
      throw new NotFoundError('webhook subscription', id);
    }
    res.json({ id, object: 'webhook_subscription', deleted: true });
  });

  router.post('/webhook-subscriptions/:id/rotate-secret', async (req, res) => {
    const id = String(req.params.id);
    await load(res.locals.merchantId, id);
    const secret = newWebhookSecret();
    const rotated = await rotateSecret(db, res.locals.merchantId, id, secret, deps.secretRotationMs);
    if (!rotated) throw new NotFoundError('webhook subscription', id);
    res.json({ ...subscriptionJson(rotated), secret: await currentSecret(db, id) });
  });

  /**
   * The endpoint's deliveries, newest first, each with its attempts; filtered by status and event
   * type, and paginated like GET /events (limit 1-100, default 10; startingAfter = a delivery id).
   */
  router.get('/webhook-subscriptions/:id/deliveries', async (req, res) => {
    const subscription = await load(res.locals.merchantId, String(req.params.id));
    const parsed = listDeliveriesQuery.safeParse(req.query);
    if (!parsed.success) throw validationFailed(parsed.error, 'query');
    const { deliveries, hasMore } = await listDeliveries(db, {
      subscriptionId: subscription.id,
      status: parsed.data.status,
      eventType: parsed.data.eventType,
      startingAfter: parsed.data.startingAfter,
      limit: parsed.data.limit ?? 10,
    });
    res.json({
      object: 'list',
      data: deliveries.map((d) => ({
        id: d.id,
        object: 'webhook_delivery',
        eventId: d.eventId,
        eventType: d.eventType,
        status: d.status,
        attemptCount: d.attemptCount,
        nextAttemptAt: d.status === 'pending' ? (d.nextAttemptAt?.toISOString() ?? null) : null,
        lastStatusCode: d.lastStatusCode,
        lastError: d.lastError,
        deliveredAt: d.deliveredAt?.toISOString() ?? null,
        createdAt: d.createdAt.toISOString(),
        attempts: d.attempts.map((a) => ({
          number: a.number,
          at: a.at.toISOString(),
          statusCode: a.statusCode,
          latencyMs: a.latencyMs,
          error: a.error,
        })),
      })),
      hasMore,
      // Pass as startingAfter to get the next page.
      nextStartingAfter: hasMore ? (deliveries.at(-1)?.id ?? null) : null,
    });
  });

  /**
   * Sends a signed `webhook.test` event to this endpoint now and answers with what it answered
   * (200 whatever the endpoint said: the outcome is in the body). See webhooks/test-event.ts.
   */
  router.post('/webhook-subscriptions/:id/test', ...optionalJsonBody(), async (req, res) => {
    const subscription = await load(res.locals.merchantId, String(req.params.id));
    const parsed = testBody.safeParse(req.body);
    if (!parsed.success) throw validationFailed(parsed.error, 'body');
    const result = await sendTestEvent({ urlPolicy: deps.urlPolicy, timeoutMs: deps.timeoutMs }, subscription);
    res.json({ object: 'webhook_test', subscriptionId: subscription.id, ...result });
  });

  /**
   * Sends the endpoint's failed deliveries again: 202 with the deliveries now pending (at most
   * REPLAY_PAGE_SIZE; `hasMore` and `nextStartingAfter` for the rest). A disabled endpoint would
   * only cancel them again: 409 until it is turned back on. See webhooks/replay.ts.
   */
  router.post('/webhook-subscriptions/:id/replay', ...jsonBody(), async (req, res) => {
    const subscription = await load(res.locals.merchantId, String(req.params.id));
    const parsed = replayBody.safeParse(req.body);
    if (!parsed.success) throw validationFailed(parsed.error, 'body');
    if (!subscription.enabled) {
      throw new HttpError(
        'subscription_disabled',
        `Webhook subscription '${subscription.id}' is disabled; turn it on (PATCH with "enabled": true) before replaying.`,
      );
    }
    const { since, until, startingAfter } = parsed.data;
    const { deliveries, hasMore } = await replayDeliveries(
      { db, enqueue: deps.enqueue },
      {
        subscriptionId: subscription.id,
        since: new Date(since),
        until: until === undefined ? undefined : new Date(until),
        startingAfter,
      },
    );
    res.status(202).json({
      object: 'list',
      data: deliveries.map((d) => ({ id: d.id, object: 'webhook_delivery', eventId: d.eventId, status: 'pending' })),
      count: deliveries.length,
      limit: REPLAY_PAGE_SIZE,
      hasMore,
      nextStartingAfter: hasMore ? (deliveries.at(-1)?.id ?? null) : null,
    });
  });

  return router;
}
