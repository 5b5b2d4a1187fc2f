import { Router } from 'express';
import { z } from 'zod';
import { orderJson } from '../../domain/order-json.ts';
import { type ResolutionStore, resolvePaymentOrder } from '../../domain/resolve-payment-order.ts';
import { jsonBody } from '../middleware.ts';
import { authenticateOperator, type OperatorLookup } from '../operator-auth.ts';
import { HttpError, validationProblem } from '../problem.ts';
import { orderIdParam } from '../schemas/payment-order.schema.ts';

export const resolveBody = z.strictObject({
  status: z.enum(['COMPLETED', 'FAILED'], { error: 'must be COMPLETED or FAILED' }),
  providerReference: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces' })
    .optional(),
  note: z
    .string()
    .trim()
    .min(1, { error: 'must say why (it is kept in the order history)' })
    .max(1000)
    .refine((s) => s.isWellFormed() && !s.includes('\u0000'), { error: 'must be well-formed text without NUL' }),
});

export type OperatorRoutesDeps = Readonly<{ lookupOperator: OperatorLookup; resolve: ResolutionStore }>;

/**
 * Routes for people on call, with an operator key (never a merchant's): settle an order under
 * review. Any merchant's order: operators work across merchants.
 */
export function operatorRoutes(deps: OperatorRoutesDeps): Router {
  const router = Router();
  router.post(
    '/payment-orders/:id/resolve',
    authenticateOperator(deps.lookupOperator),
    ...jsonBody(),
    async (req, res) => {
      const id = String(req.params.id);
      if (!orderIdParam.safeParse(id).success)
        throw new HttpError('resource_missing', `No such payment order: '${id}'`);
      const parsed = resolveBody.safeParse(req.body);
      if (!parsed.success) {
        const problem = validationProblem(parsed.error, 'body');
        throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
      }
      const order = await resolvePaymentOrder(deps.resolve, {
        orderId: id,
        status: parsed.data.status,
        providerReference: parsed.data.providerReference,
        note: parsed.data.note,
        operator: res.locals.operator as string,
      });
      res.json(orderJson(order));
    },
  );
  return router;
}
