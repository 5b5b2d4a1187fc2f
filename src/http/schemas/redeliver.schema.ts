import { z } from 'zod';
import { idPattern } from '../../lib/ids.ts';

/**
 * The body of POST /events/{id}/redeliver and of the operator's POST
 * /operator/events/{id}/redeliver: none (every enabled subscription that wants the event's type),
 * or one subscription of the event's merchant.
 */
export const redeliverBody = z
  .strictObject({ subscriptionId: z.string().regex(idPattern('whs')).optional() })
  .optional();
