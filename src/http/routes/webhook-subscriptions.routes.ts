import { Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/connection.ts';
import { listDeliveries } from '../../db/webhook-deliveries.repository.ts';
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
import { newWebhookSecret } from '../../webhooks/signing.ts';
import { checkWebhookUrl, type UrlPolicy } from '../../webhooks/url-policy.ts';
import { jsonBody } from '../middleware.ts';
import { HttpError, validationProblem } from '../problem.ts';

const url = z.string().min(1).max(2048);
const events = z
  .array(z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }))
  .min(1)
  .refine((types) => new Set(types).size === types.length, { error: 'must not repeat an event type' });
const createBody = z.strictObject({ url, events: events.optional() });
/** PATCH: any of the three; `enabled: true` turns on an endpoint that was turned off (after a 410, say). */
const updateBody = z
  .strictObject({ url: url.optional(), events: events.optional(), enabled: z.boolean().optional() })
  .refine((body) => Object.keys(body).length > 0, { error: 'send at least one of url, events, enabled' });

const subscriptionId = idPattern('whs');

export type WebhookRoutesDeps = Readonly<{ db: Db; urlPolicy: UrlPolicy; secretRotationMs: number }>;

export function subscriptionJson(subscription: Subscription) {
  return {
    id: subscription.id,
    object: 'webhook_subscription',
    url: subscription.url,
    events: subscription.events,
    enabled: subscription.enabled,
    disabledReason: subscription.disabledReason,
    createdAt: subscription.createdAt.toISOString(),
    updatedAt: subscription.updatedAt.toISOString(),
  };
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

  router.get('/webhook-subscriptions/:id/deliveries', async (req, res) => {
    const subscription = await load(res.locals.merchantId, String(req.params.id));
    const deliveries = await listDeliveries(db, subscription.id, 100);
    res.json({
      object: 'list',
      data: deliveries.map((d) => ({
        id: d.id,
        object: 'webhook_delivery',
        eventId: d.eventId,
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
      hasMore: false,
    });
  });

  return router;
}
