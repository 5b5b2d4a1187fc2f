import { Router } from 'express';
import type { Db } from '../../db/connection.ts';
import { findOrder, listOrders, listTransitions } from '../../db/payment-orders.repository.ts';
import { listAttempts } from '../../db/provider-attempts.repository.ts';
import { listReviews } from '../../db/reviews.repository.ts';
import {
  type CreatePaymentOrderDeps,
  createPaymentOrder,
  type SavedResponse,
} from '../../domain/create-payment-order.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { orderDetailJson, orderJson } from '../../domain/order-json.ts';
import { jsonBody } from '../middleware.ts';
import { HttpError, validationProblem } from '../problem.ts';
import {
  createPaymentOrderBody,
  listPaymentOrdersQuery,
  orderIdParam,
  toNewPaymentOrder,
} from '../schemas/payment-order.schema.ts';

const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

export type PaymentOrderRoutesDeps = Readonly<{ db: Db; create: CreatePaymentOrderDeps }>;

export function paymentOrderRoutes(deps: PaymentOrderRoutesDeps): Router {
  const router = Router();

  router.post('/payment-orders', ...jsonBody(), async (req, res) => {
    const idempotencyKey = req.get('Idempotency-Key');
    if (idempotencyKey === undefined || idempotencyKey === '') {
      throw new HttpError(
        'idempotency_key_missing',
        'Send an Idempotency-Key header (1 to 255 printable ASCII characters) so that retrying is safe.',
      );
    }
    if (!IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new HttpError(
        'idempotency_key_invalid',
        'The Idempotency-Key header must be 1 to 255 printable ASCII characters.',
      );
    }
    const parsed = createPaymentOrderBody.safeParse(req.body);
    if (!parsed.success) throw new ValidationFailed(validationProblem(parsed.error, 'body'));

    const { response, replayed } = await createPaymentOrder(
      deps.create,
      {
        merchantId: res.locals.merchantId as string,
        idempotencyKey,
        operation: 'POST /payment-orders',
        order: toNewPaymentOrder(parsed.data),
      },
      (order): SavedResponse => ({
        status: 201,
        body: JSON.stringify(
          orderDetailJson(order, [{ from: null, to: 'PENDING', reason: 'accepted', at: order.createdAt }], []),
        ),
      }),
    );
    const id = (JSON.parse(response.body) as { id: string }).id;
    res.setHeader('Location', `/payment-orders/${id}`);
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(response.status).type('application/json').send(response.body);
  });

  router.get('/payment-orders/:id', async (req, res) => {
    const merchantId = res.locals.merchantId as string;
    const id = String(req.params.id);
    const order = orderIdParam.safeParse(id).success ? await findOrder(deps.db, merchantId, id) : null;
    if (!order) throw new NotFoundError('payment order', id);
    const [history, attempts, reviews] = await Promise.all([
      listTransitions(deps.db, order.id),
      listAttempts(deps.db, order.id),
      listReviews(deps.db, order.id),
    ]);
    res.json(orderDetailJson(order, history, attempts, reviews));
  });

  router.get('/payment-orders', async (req, res) => {
    const parsed = listPaymentOrdersQuery.safeParse(req.query);
    if (!parsed.success) throw new ValidationFailed(validationProblem(parsed.error, 'query'));
    const { orders, hasMore } = await listOrders(deps.db, {
      merchantId: res.locals.merchantId as string,
      status: parsed.data.status,
      limit: parsed.data.limit ?? 10,
      startingAfter: parsed.data.startingAfter,
    });
    res.json({
      object: 'list',
      data: orders.map(orderJson),
      hasMore,
      // Pass as startingAfter to get the next page.
      nextStartingAfter: hasMore ? (orders.at(-1)?.id ?? null) : null,
    });
  });

  return router;
}

/** Carries a ready validation problem (with its field errors) to the error handler. */
class ValidationFailed extends HttpError {
  constructor(problem: ReturnType<typeof validationProblem>) {
    super('validation_failed', problem.detail, { details: { errors: problem.errors } });
  }
}
