import { z } from 'zod';

/** `limit` of every list's query string: digits, 1 to 100 (each route says its default). */
export const pageLimit = z
  .string()
  .regex(/^\d{1,3}$/, { error: 'must be an integer from 1 to 100' })
  .transform(Number)
  .pipe(z.number().int().min(1, { error: 'must be at least 1' }).max(100, { error: 'must be at most 100' }))
  .optional();
