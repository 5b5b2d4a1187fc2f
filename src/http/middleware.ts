import { randomUUID } from 'node:crypto';
import express, {
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import { pinoHttp } from 'pino-http';
import { hashApiKey, looksLikeApiKey } from '../domain/api-key.ts';
import { CodedError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { HttpError, problemFor, problemFromCodedError, sendProblem } from './problem.ts';

export const MAX_BODY_BYTES = 64 * 1024;
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * One log line per request, built from an allow-list: method, path, status, time, request id and
 * merchant. Headers (Authorization!) and bodies (payment methods!) are never logged.
 */
export function requestLogging(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    serializers: {
      req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customProps: (_req, res) => ({ merchantId: (res as Response).locals?.merchantId }),
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : 'info'),
  });
}

/**
 * Counts and times every answer for GET /metrics, labelled by the route pattern that matched
 * (`/payment-orders/:id`, never the id itself) or `unmatched`.
 */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      const pattern = req.route?.path;
      const route = typeof pattern === 'string' ? `${req.baseUrl}${pattern}` : 'unmatched';
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.httpDuration.observe({ method: req.method, route }, (performance.now() - started) / 1000);
    });
    next();
  };
}

export type MerchantLookup = (keyHash: Buffer) => Promise<string | null>;

/** `Authorization: Bearer <key>` → res.locals.merchantId, or 401. */
export function authenticate(lookup: MerchantLookup): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer +(\S+) *$/i.exec(header) : null;
    res.setHeader('WWW-Authenticate', 'Bearer');
    if (!match?.[1]) {
      throw new HttpError('authentication_required', 'Send your API key as "Authorization: Bearer <key>".');
    }
    const merchantId = looksLikeApiKey(match[1]) ? await lookup(hashApiKey(match[1])) : null;
    if (!merchantId) throw new HttpError('invalid_api_key', 'The API key is not valid or has been revoked.');
    res.removeHeader('WWW-Authenticate');
    res.locals.merchantId = merchantId;
    next();
  };
}

/**
 * JSON bodies only, at most 64 KiB. The content type is checked first (415), then size (413),
 * then syntax (400); body-parser's own errors are mapped in errorHandler.
 */
export function jsonBody(): RequestHandler[] {
  // strict: false parses any JSON value; one that is not an object is then a validation error
  // ("expected object"), which says more than "malformed JSON" would.
  const parse = express.json({ limit: MAX_BODY_BYTES, strict: false, type: () => true });
  const requireJson: RequestHandler = (req, _res, next) => {
    if (!req.is('application/json')) {
      throw new HttpError('unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
    }
    next();
  };
  return [requireJson, parse];
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError('route_not_found', `No route for ${req.method} ${req.path}.`));
};

/** The one place errors become responses. 5xx answers never carry internals; the log does. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const problem = toProblem(error);
    if (problem.status >= 500) {
      logger.error({ err: error, requestId: req.id }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, { ...problem, requestId: req.id });
  };
}

function toProblem(error: unknown) {
  if (error instanceof CodedError) return problemFromCodedError(error);
  const type = (error as { type?: unknown })?.type;
  switch (type) {
    case 'entity.too.large':
      return problemFor('payload_too_large', `The body must be at most ${MAX_BODY_BYTES} bytes.`);
    case 'entity.parse.failed':
      return problemFor('malformed_json', 'The body could not be parsed as JSON.');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return problemFor('unsupported_media_type', (error as Error).message);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return problemFor('malformed_json', 'The body could not be read.');
    default:
      // Other client-side faults body-parser reports only by status, e.g. a Content-Encoding whose
      // bytes do not decompress (zlib's Z_DATA_ERROR, status 400).
      if ((error as { expose?: boolean })?.expose === true && (error as { status?: number }).status === 400) {
        return problemFor('malformed_json', 'The body could not be read (is its Content-Encoding right?).');
      }
      return problemFor('internal_error', 'Something went wrong on our side. It has been logged.');
  }
}
