import { Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/connection.ts';
import { findEvent, listEvents } from '../../db/outbox-events.repository.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { eventBody } from '../../domain/event-body.ts';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { idPattern } from '../../lib/ids.ts';
import type { EnqueueDelivery } from '../../outbox/relay.ts';
import { redeliverEvent } from '../../webhooks/redeliver.ts';
import { optionalJsonBody } from '../optional-json-body.ts';
import { HttpError, validationProblem } from '../problem.ts';
import { pageLimit } from '../schemas/page-limit.schema.ts';
import { redeliverBody } from '../schemas/redeliver.schema.ts';

const eventId = idPattern('evt');

export const listEventsQuery = z.strictObject({
  type: z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }).optional(),
  limit: pageLimit,
  startingAfter: z.string().regex(eventId, { error: 'must be an event id' }).optional(),
});

export type EventRoutesDeps = Readonly<{ db: Db; enqueue: EnqueueDelivery }>;

/** The merchant's event log (like Stripe's events API) and redelivery on demand. */
export function eventRoutes(deps: EventRoutesDeps): Router {
  const router = Router();
  const { db } = deps;

  router.get('/events', async (req, res) => {
    const parsed = listEventsQuery.safeParse(req.query);
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
