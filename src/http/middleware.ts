import { randomUUID } from 'node:crypto';
import express, {
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import { pinoHttp } from 'pino-http';
import { unavailableCode } from '../db/database-errors.ts';
import { hashApiKey, looksLikeApiKey } from '../domain/api-key.ts';
import { CodedError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { HttpError, problemFor, problemFromCodedError, sendProblem } from './problem.ts';

export const MAX_BODY_BYTES = 64 * 1024;
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * One log line per request, built from an allow-list: method, route, status, time, request id and
 * merchant. Headers (Authorization!), bodies (payment methods!) and paths are never logged: a
 * path may carry a secret (the M-Pesa callback URL `/callbacks/mpesa/<token>` names the order by
 * an unguessable token), so the line names the route pattern that matched, and for a request no
 * route matched, the path with every segment that is not a plain word replaced by `*`.
 * Lines written during a request (`req.log`) carry only its request id, for the same reason.
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
    // The request is described at the end (below), once the route is known, never at the start.
    quietReqLogger: true,
    quietResLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    serializers: {
      req: (req: { id: string; method: string; raw: Request }) => ({
        id: req.id,
        method: req.method,
        ...routeOf(req.raw),
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customProps: (_req, res) => ({ merchantId: (res as Response).locals?.merchantId }),
    customSuccessObject: (req, _res, fields) => ({ req, ...fields }),
    // A 5xx has already been logged with its cause by errorHandler: pino-http's own stand-in error
    // ("failed with status code 500", with a stack) would only repeat it.
    customErrorObject: (req, res, error, fields) =>
      res.statusCode >= 500
        ? { req, res: fields.res, responseTime: fields.responseTime }
        : { req, ...fields, err: error },
    // 503 is the database being away (logged once by errorHandler), not a fault of ours to page on.
    customLogLevel: (_req, res, error) =>
      res.statusCode === 503 ? 'warn' : error || res.statusCode >= 500 ? 'error' : 'info',
  });
}

/** The route pattern that matched (`/payment-orders/:id`), or, unmatched, the path with its ids and tokens starred. */
function routeOf(req: Request): { route: string; path?: string } {
  const pattern = req.route?.path;
  if (typeof pattern === 'string') return { route: `${req.baseUrl ?? ''}${pattern}` };
  // Kept: segments shaped like our routes' literals (lowercase words and hyphens). A token or id
  // (mixed case, digits, `_`, `%`) becomes `*`; a random 32-character token passes for a word
  // with odds of about (27/64)^32, 1e-12.
  const path = String(req.path ?? '')
    .split('/')
    .map((segment) => (segment === '' || /^[a-z][a-z-]{0,39}$/.test(segment) ? segment : '*'))
    .join('/');
  return { route: 'unmatched', path };
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
/** The key of an `Authorization: Bearer <key>` header, or null. */
export function bearerKey(header: string | undefined): string | null {
  const match = header ? /^Bearer +(\S+) *$/i.exec(header) : null;
  return match?.[1] ?? null;
}

export function authenticate(lookup: MerchantLookup): RequestHandler {
  return async (req, res, next) => {
    const key = bearerKey(req.headers.authorization);
    res.setHeader('WWW-Authenticate', 'Bearer');
    if (!key) {
      throw new HttpError('authentication_required', 'Send your API key as "Authorization: Bearer <key>".');
    }
    const merchantId = looksLikeApiKey(key) ? await lookup(hashApiKey(key)) : null;
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

/**
 * Seconds a client is told to wait (Retry-After) while the database is unavailable. A PostgreSQL
 * restart is shorter (stop + start took 0.2-0.3 s with test/helpers/postgres-server.ts, and the
 * pool reconnects on the next request), a managed failover longer (tens of seconds): 5 s puts a
 * client's retry after a restart without having every client retry several times a second
 * through a long outage. Clients retry POSTs with the same Idempotency-Key, which makes it safe.
 */
export const DATABASE_RETRY_AFTER_SECONDS = 5;
/** While the database is unavailable, errorHandler writes one warn line per this interval, not one per request. */
const OUTAGE_LOG_INTERVAL_MS = 10_000;

/** The one place errors become responses. 5xx answers never carry internals; the log does. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  const reportOutage = outageReporter(logger);
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const unavailable = unavailableCode(error);
    const problem =
      unavailable !== null
        ? problemFor('database_unavailable', 'The database is not reachable right now; retry later.')
        : toProblem(error);
    if (unavailable !== null) {
      reportOutage(unavailable, error, req.id);
    } else if (problem.status >= 500) {
      logger.error({ err: error, requestId: req.id }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (unavailable !== null) res.setHeader('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
    sendProblem(res, { ...problem, requestId: req.id });
  };
}

/**
 * An outage fails every request at once: one warn line (the code and message, no stack) per
 * OUTAGE_LOG_INTERVAL_MS, with the count of 503s answered since the previous one. Each request's
 * own line (requestLogging) still shows its 503.
 */
function outageReporter(logger: Logger): (code: string, error: unknown, requestId: unknown) => void {
  let reportedAt = Number.NEGATIVE_INFINITY;
  let unreported = 0;
  return (code, error, requestId) => {
    const now = performance.now();
    if (now - reportedAt < OUTAGE_LOG_INTERVAL_MS) {
      unreported++;
      return;
    }
    const message = (error as { message?: unknown })?.message;
    logger.warn(
      { code, error: typeof message === 'string' ? message : String(error), requestId, since: unreported },
      'database unavailable: answering 503 database_unavailable',
    );
    reportedAt = now;
    unreported = 0;
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
      // The router could not percent-decode a path parameter (URIError, status 400); its message
      // quotes the raw segment, which may be a callback token, so the detail does not.
      if (error instanceof URIError && (error as { status?: number }).status === 400) {
        return problemFor('malformed_path', 'The URL path is not valid percent-encoding.');
      }
      // Other client-side faults body-parser reports only by status, e.g. a Content-Encoding whose
      // bytes do not decompress (zlib's Z_DATA_ERROR, status 400).
      if ((error as { expose?: boolean })?.expose === true && (error as { status?: number }).status === 400) {
        return problemFor('malformed_json', 'The body could not be read (is its Content-Encoding right?).');
      }
      return problemFor('internal_error', 'Something went wrong on our side. It has been logged.');
  }
}
