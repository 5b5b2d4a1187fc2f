import { Router } from 'express';
import type { Db } from '../../db/connection.ts';
import { findEvent } from '../../db/outbox-events.repository.ts';
import { reenableSubscription } from '../../db/webhook-subscriptions.repository.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { idPattern } from '../../lib/ids.ts';
import type { EnqueueDelivery } from '../../outbox/relay.ts';
import { redeliverEvent } from '../../webhooks/redeliver.ts';
import { authenticateOperator, type OperatorLookup } from '../operator-auth.ts';
import { optionalJsonBody } from '../optional-json-body.ts';
import { HttpError, validationProblem } from '../problem.ts';
import { redeliverBody } from '../schemas/redeliver.schema.ts';
import { subscriptionJson } from './webhook-subscriptions.routes.ts';

const eventId = idPattern('evt');
const subscriptionId = idPattern('whs');

export type OperatorActionRoutesDeps = Readonly<{ db: Db; lookupOperator: OperatorLookup; enqueue: EnqueueDelivery }>;

/**
 * What people on call do to webhooks, with an operator key, for any merchant: send an event again
 * and turn an endpoint back on. The merchant routes do the same for one's own (POST
 * /events/{id}/redeliver, PATCH /webhook-subscriptions/{id}); these skip the merchant check only.
 * There is no table for these actions, so each leaves an info log line naming the operator.
 */
export function operatorActionRoutes(deps: OperatorActionRoutesDeps): Router {
  const router = Router();
  const { db } = deps;
  const operatorOnly = authenticateOperator(deps.lookupOperator);

  router.post('/operator/events/:id/redeliver', operatorOnly, ...optionalJsonBody(), async (req, res) => {
    const id = String(req.params.id);
    const event = eventId.test(id) ? await findEvent(db, id) : null;
    if (!event) throw new NotFoundError('event', id);
    const parsed = redeliverBody.safeParse(req.body);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'body');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    // The subscription, if named, must be the event's merchant's: redeliverEvent looks it up there (404).
    const deliveries = await redeliverEvent({ db, enqueue: deps.enqueue }, event, parsed.data?.subscriptionId);
    req.log.info(
      { operator: res.locals.operator, eventId: event.id, merchantId: event.merchantId, deliveries },
      'operator redelivered an event',
    );
    res
      .status(202)
      .json({ object: 'list', data: deliveries.map((deliveryId) => ({ id: deliveryId, status: 'pending' })) });
  });

  router.post('/operator/webhook-subscriptions/:id/enable', operatorOnly, async (req, res) => {
    const id = String(req.params.id);
    const enabled = subscriptionId.test(id) ? await reenableSubscription(db, id) : null;
    if (!enabled) throw new NotFoundError('webhook subscription', id);
    req.log.info(
      { operator: res.locals.operator, subscriptionId: id, merchantId: enabled.merchantId },
      'operator re-enabled a webhook subscription',
    );
    res.json({ ...subscriptionJson(enabled), merchantId: enabled.merchantId });
  });

  return router;
}
