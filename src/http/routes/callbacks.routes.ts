import { Router } from 'express';
import { applyProviderCallback, type ProcessingStore } from '../../domain/process-payment-order.ts';
import { parseStkCallback } from '../../providers/mpesa.ts';
import { jsonBody } from '../middleware.ts';
import { HttpError } from '../problem.ts';

/** The token in a callback URL: 24 random bytes, base64url. */
const CALLBACK_TOKEN = /^[A-Za-z0-9_-]{32}$/;

/**
 * Asynchronous provider results. No API key: Safaricom calls this; the unguessable token in the
 * path names the order, and the CheckoutRequestID must be that order's push.
 */
export function callbackRoutes(store: ProcessingStore): Router {
  const router = Router();
  router.post('/callbacks/mpesa/:token', ...jsonBody(), async (req, res) => {
    const token = String(req.params.token);
    const parsed = parseStkCallback(req.body);
    if (!parsed) throw new HttpError('validation_failed', 'The body is not an M-Pesa STK callback.');
    const result = CALLBACK_TOKEN.test(token)
      ? await applyProviderCallback(store, token, parsed.checkoutRequestId, parsed.outcome)
      : 'unknown_order';
    if (result === 'unknown_order')
      throw new HttpError('resource_missing', 'No payment order in flight for this callback.');
    if (result === 'paid_after_failure') {
      // The order stays FAILED (terminal), but money moved: a refund or a manual fix is needed, so
      // it is logged as an error with what is needed to find the payment.
      req.log.error(
        {
          checkoutRequestId: parsed.checkoutRequestId,
          receipt: parsed.outcome.kind === 'succeeded' ? parsed.outcome.reference : null,
        },
        'M-Pesa reports a payment for an order that already FAILED: reconcile by hand',
      );
    }
    // Daraja's documented acknowledgement.
    res.json({ ResultCode: 0, ResultDesc: result === 'applied' ? 'Accepted' : 'Already processed' });
  });
  return router;
}
