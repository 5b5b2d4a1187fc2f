import { Router } from 'express';
import type { CallbackDisposition } from '../../domain/callback-evidence.ts';
import { type ProcessDeps, receiveProviderCallback } from '../../domain/process-payment-order.ts';
import type { Metrics } from '../../metrics/metrics.ts';
import { parseStkCallback } from '../../providers/mpesa.ts';
import { jsonBody } from '../middleware.ts';
import { HttpError } from '../problem.ts';

/** The token in a callback URL: 24 random bytes, base64url. */
const CALLBACK_TOKEN = /^[A-Za-z0-9_-]{32}$/;

/** Dispositions that mean money may have moved where it should not have: people must look. */
const ANOMALIES: ReadonlySet<CallbackDisposition> = new Set(['paid_after_failure', 'second_payment', 'contradiction']);

export type CallbackRoutesDeps = Readonly<{
  processing: Pick<ProcessDeps, 'store' | 'providers'>;
  metrics: Metrics;
}>;

/**
 * Asynchronous provider results. No API key: Safaricom calls this; the unguessable token in the
 * path names the order. The callback is evidence (see domain/callback-evidence.ts): recorded, and
 * applied only once it is confirmed. The token never reaches a log line (request logs carry the
 * route pattern).
 */
export function callbackRoutes(deps: CallbackRoutesDeps): Router {
  const router = Router();
  router.post('/callbacks/mpesa/:token', ...jsonBody(), async (req, res) => {
    const token = String(req.params.token);
    const callback = parseStkCallback(req.body);
    if (!callback) throw new HttpError('validation_failed', 'The body is not an M-Pesa STK callback.');
    const result = CALLBACK_TOKEN.test(token)
      ? await receiveProviderCallback(deps.processing, token, callback)
      : { known: false, disposition: null };
    if (!result.known || !result.disposition) {
      throw new HttpError('resource_missing', 'No payment order for this callback.');
    }
    deps.metrics.providerCallbacks.inc({ provider: 'mpesa', disposition: result.disposition });
    if (ANOMALIES.has(result.disposition)) {
      // Recorded as a row and a review (with its event) already; the log line is for whoever is on call.
      req.log.error(
        { disposition: result.disposition, checkoutRequestId: callback.externalId, receipt: callback.receipt },
        'M-Pesa reports a payment that contradicts the order: flagged for review',
      );
    }
    // Daraja's documented acknowledgement.
    res.json({ ResultCode: 0, ResultDesc: result.disposition === 'applied' ? 'Accepted' : 'Received' });
  });
  return router;
}
