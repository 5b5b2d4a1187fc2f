import type { RequestHandler } from 'express';
import { hashApiKey, looksLikeApiKey, looksLikeOperatorKey } from '../domain/api-key.ts';
import { bearerKey } from './middleware.ts';
import { HttpError } from './problem.ts';

export type OperatorLookup = (keyHash: Buffer) => Promise<string | null>;

/**
 * `Authorization: Bearer op_...` → res.locals.operator (the key's name), or 401; a merchant's key
 * gets 403: it is a valid key, for the wrong routes.
 */
export function authenticateOperator(lookup: OperatorLookup): RequestHandler {
  return async (req, res, next) => {
    const key = bearerKey(req.headers.authorization);
    res.setHeader('WWW-Authenticate', 'Bearer');
    if (!key) {
      throw new HttpError('authentication_required', 'Send an operator key as "Authorization: Bearer <key>".');
    }
    if (looksLikeApiKey(key)) {
      throw new HttpError(
        'operator_key_required',
        'This route takes an operator key (npm run keys -- create-operator).',
      );
    }
    const operator = looksLikeOperatorKey(key) ? await lookup(hashApiKey(key)) : null;
    if (!operator) throw new HttpError('invalid_api_key', 'The operator key is not valid or has been revoked.');
    res.removeHeader('WWW-Authenticate');
    res.locals.operator = operator;
    next();
  };
}
