import { type Request, type RequestHandler, Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/connection.ts';
import { findEvent, listEvents } from '../../db/outbox-events.repository.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { eventBody } from '../../domain/event-body.ts';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { idPattern } from '../../lib/ids.ts';
import type { EnqueueDelivery } from '../../outbox/relay.ts';
import { redeliverEvent } from '../../webhooks/redeliver.ts';
import { jsonBody } from '../middleware.ts';
import { HttpError, validationProblem } from '../problem.ts';

const eventId = idPattern('evt');

const listQuery = z.strictObject({
  type: z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }).optional(),
  limit: z
    .string()
    .regex(/^\d{1,3}$/, { error: 'must be an integer from 1 to 100' })
    .transform(Number)
    .pipe(z.number().int().min(1).max(100))
    .optional(),
  startingAfter: z.string().regex(eventId, { error: 'must be an event id' }).optional(),
});

const redeliverBody = z.strictObject({ subscriptionId: z.string().regex(idPattern('whs')).optional() }).optional();

export type EventRoutesDeps = Readonly<{ db: Db; enqueue: EnqueueDelivery }>;

/** The merchant's event log (like Stripe's events API) and redelivery on demand. */
export function eventRoutes(deps: EventRoutesDeps): Router {
  const router = Router();
  const { db } = deps;

  router.get('/events', async (req, res) => {
    const parsed = listQuery.safeParse(req.query);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'query');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    const { events, hasMore } = await listEvents(db, {
      merchantId: res.locals.merchantId,
      type: parsed.data.type,
      startingAfter: parsed.data.startingAfter,
      limit: parsed.data.limit ?? 10,
    });
    res.json({
      object: 'list',
      data: events.map((e) => ({ ...eventBody(e), object: 'event' })),
      hasMore,
      nextStartingAfter: hasMore ? (events.at(-1)?.id ?? null) : null,
    });
  });

  router.get('/events/:id', async (req, res) => {
    const id = String(req.params.id);
    const event = eventId.test(id) ? await findEvent(db, id) : null;
    if (!event || event.merchantId !== res.locals.merchantId) throw new NotFoundError('event', id);
    res.json({ ...eventBody(event), object: 'event' });
  });

  /**
   * Sends the event again, now, to one subscription or to every enabled one that wants its type:
   * the delivery (created if there was none) goes back to pending with a new attempt.
   */
  router.post('/events/:id/redeliver', ...optionalJsonBody(), async (req, res) => {
    const id = String(req.params.id);
    const event = eventId.test(id) ? await findEvent(db, id) : null;
    if (!event || event.merchantId !== res.locals.merchantId) throw new NotFoundError('event', id);
    const parsed = redeliverBody.safeParse(req.body);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'body');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    const deliveries = await redeliverEvent({ db, enqueue: deps.enqueue }, event, parsed.data?.subscriptionId);
    res
      .status(202)
      .json({ object: 'list', data: deliveries.map((deliveryId) => ({ id: deliveryId, status: 'pending' })) });
  });

  return router;
}

/** Redeliver takes an optional JSON body: no body is fine; a body must be JSON. */
function optionalJsonBody(): RequestHandler[] {
  const [requireJson, parse] = jsonBody() as [RequestHandler, RequestHandler];
  const hasBody = (req: Request) =>
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  return [
    (req, res, next) => {
      if (!hasBody(req)) return next();
      // requireJson throws (415) when the body is not JSON; Express hands that to the error handler.
      requireJson(req, res, (error?: unknown) => (error ? next(error) : parse(req, res, next)));
    },
  ];
}
