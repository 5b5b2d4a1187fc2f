import type { Request, RequestHandler } from 'express';
import { jsonBody } from './middleware.ts';

/**
 * For routes whose body is optional (redelivery): no body is fine and leaves req.body undefined;
 * a body must be JSON, checked and parsed as jsonBody() does (415, 413, 400).
 */
export function optionalJsonBody(): RequestHandler[] {
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
