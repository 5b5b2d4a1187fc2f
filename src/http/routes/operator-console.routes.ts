import { fileURLToPath } from 'node:url';
import express, { type RequestHandler, Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/connection.ts';
import {
  type CallCounts,
  type OperatorOverview,
  type OrderStory,
  type OrderSummary,
  readOperatorOverview,
  readOrderStory,
} from '../../db/operator-console.repository.ts';
import { NotFoundError } from '../../domain/errors.ts';
import { orderDetailJson } from '../../domain/order-json.ts';
import { authenticateOperator, type OperatorLookup } from '../operator-auth.ts';
import { HttpError, validationProblem } from '../problem.ts';
import { orderIdParam } from '../schemas/payment-order.schema.ts';

/** The console's page, script and style: plain files, no build step (src/http/console/). */
const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));

/**
 * Self only, and nothing inline: the page's one script and one style sheet come from here, its
 * requests go here, it cannot be framed. Trusted Types with no policy make any HTML-string sink
 * (innerHTML and the like) throw, so values can only reach the page as text nodes.
 */
const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** What the console shows from the configuration: the rate gate's limits, and whether Kafka is on. */
export type ConsoleSettings = Readonly<{
  gate: Readonly<{ callsPerSecond: number; perProvider: Readonly<Record<string, number>>; marginMs: number }>;
  kafka: boolean;
}>;

export type OperatorConsoleDeps = Readonly<{
  db: Db;
  lookupOperator: OperatorLookup;
  settings: ConsoleSettings;
}>;

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,5}$/, { error: `must be an integer from ${min} to ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, { error: `must be at least ${min}` })
        .max(max, { error: `must be at most ${max}` }),
    );

export const overviewQuery = z.strictObject({
  /** A PENDING or PROCESSING order older than this is stuck (default 5). */
  stuckMinutes: integer(1, 10_080).optional(),
  /** The provider-call chart's span (default 10): 10-second bars up to 10 minutes, 1-minute bars beyond. */
  rateMinutes: integer(1, 60).optional(),
  /** Orders by status counts the orders created in this window (default 60). */
  recentMinutes: integer(1, 1_440).optional(),
  /** Rows per list (default 20). */
  limit: integer(1, 100).optional(),
});

/**
 * The operator console (`/console`, static, no key needed to load it) and the two reads it makes
 * with an operator key: the overview and one order's whole story. Any merchant's data: operators
 * work across merchants; a merchant's key gets 403 (authenticateOperator).
 */
export function operatorConsoleRoutes(deps: OperatorConsoleDeps): Router {
  const router = Router();
  const operatorOnly = authenticateOperator(deps.lookupOperator);

  // Files, not API routes (the OpenAPI document lists routes): /console itself is index.html.
  router.use('/console', consoleHeaders);
  router.use('/console', consolePage);
  router.use('/console', express.static(CONSOLE_DIR, { index: false, redirect: false, dotfiles: 'ignore' }));
  // Not a console file: 404 here, rather than the merchant authentication's 401 further on.
  router.use('/console', (req, _res, next) => {
    next(new HttpError('route_not_found', `No console file at ${req.method} ${req.baseUrl}${req.path}.`));
  });

  router.get('/operator/overview', operatorOnly, async (req, res) => {
    const parsed = overviewQuery.safeParse(req.query);
    if (!parsed.success) {
      const problem = validationProblem(parsed.error, 'query');
      throw new HttpError('validation_failed', problem.detail, { details: { errors: problem.errors } });
    }
    const stuckMinutes = parsed.data.stuckMinutes ?? 5;
    const rateMinutes = parsed.data.rateMinutes ?? 10;
    const recentMinutes = parsed.data.recentMinutes ?? 60;
    const overview = await readOperatorOverview(deps.db, {
      stuckMinutes,
      rateMinutes,
      // At most 60 bars either way.
      bucketSeconds: rateMinutes <= 10 ? 10 : 60,
      recentMinutes,
      limit: parsed.data.limit ?? 20,
      kafka: deps.settings.kafka,
    });
    res.setHeader('Cache-Control', 'no-store');
    res.json(overviewJson(overview, stuckMinutes, recentMinutes, deps.settings));
  });

  router.get('/operator/payment-orders/:id', operatorOnly, async (req, res) => {
    const id = String(req.params.id);
    const story = orderIdParam.safeParse(id).success ? await readOrderStory(deps.db, id) : null;
    if (!story) throw new NotFoundError('payment order', id);
    res.setHeader('Cache-Control', 'no-store');
    res.json(storyJson(story));
  });

  return router;
}

/** `/console` and `/console/`: the page (serve-static would answer `/console` with a redirect or a 404). */
const consolePage: RequestHandler = (req, res, next) => {
  if (req.path !== '/' || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
  res.sendFile('index.html', { root: CONSOLE_DIR });
};

const consoleHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', CONSOLE_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  // Revalidated at every load: a deploy's new script is never mixed with an old page.
  res.setHeader('Cache-Control', 'no-cache');
  next();
};

const iso = (date: Date | null) => date?.toISOString() ?? null;
const secondsSince = (now: Date, date: Date | null) =>
  date === null ? null : Math.max(0, Math.round((now.getTime() - date.getTime()) / 1000));

function summaryJson(order: OrderSummary, now: Date) {
  return {
    id: order.id,
    merchant: { id: order.merchantId, name: order.merchantName },
    status: order.status,
    provider: order.provider,
    amount: order.amount,
    currency: order.currency,
    providerReference: order.providerReference,
    createdAt: order.createdAt.toISOString(),
    ageSeconds: secondsSince(now, order.createdAt),
    reconcilingSince: iso(order.reconcilingSince),
    nextAttemptAt: iso(order.nextAttemptAt),
    review: order.review ? { reason: order.review.reason, since: order.review.since.toISOString() } : null,
    lastCall: order.lastCall
      ? {
          kind: order.lastCall.kind,
          outcome: order.lastCall.outcome,
          httpStatus: order.lastCall.httpStatus,
          startedAt: order.lastCall.startedAt.toISOString(),
          error: order.lastCall.error,
        }
      : null,
  };
}

const countsJson = (c: CallCounts) => ({ calls: c.calls, rateLimited: c.rateLimited, errors: c.errors });

function overviewJson(o: OperatorOverview, stuckMinutes: number, recentMinutes: number, settings: ConsoleSettings) {
  const { now } = o;
  const { gate } = settings;
  return {
    object: 'operator_overview',
    generatedAt: now.toISOString(),
    orders: {
      pending: o.orders.pending,
      processing: o.orders.processing,
      reconciling: o.orders.reconciling,
      underReview: o.orders.underReview,
      stuck: o.stuck.total,
      recent: { minutes: recentMinutes, byStatus: o.orders.recent },
      estimatedTotal: o.orders.estimatedTotal,
    },
    stuck: {
      minutes: stuckMinutes,
      total: o.stuck.total,
      data: o.stuck.data.map((order) => summaryJson(order, now)),
    },
    reconciling: { total: o.reconciling.total, data: o.reconciling.data.map((order) => summaryJson(order, now)) },
    underReview: {
      total: o.underReview.total,
      data: o.underReview.data.map((entry) => ({
        ...summaryJson(entry.order, now),
        reasons: entry.reasons,
        detail: entry.detail,
        openedAt: entry.openedAt.toISOString(),
        waitingSeconds: secondsSince(now, entry.openedAt),
      })),
    },
    providerCalls: {
      from: o.providerCalls.from.toISOString(),
      to: o.providerCalls.to.toISOString(),
      bucketSeconds: o.providerCalls.bucketSeconds,
      limits: { callsPerSecond: gate.callsPerSecond, perProvider: gate.perProvider, windowMs: 1000 + gate.marginMs },
      total: { ...countsJson(o.providerCalls.total), peakInAnySecond: o.providerCalls.total.peakInAnySecond },
      providers: o.providerCalls.providers.map((p) => ({
        provider: p.provider,
        // The most this provider may get: its own limit, else the whole gate's.
        limit: gate.perProvider[p.provider] ?? gate.callsPerSecond,
        ...countsJson(p),
        peakInAnySecond: p.peakInAnySecond,
        buckets: p.buckets.map((b) => ({ start: b.start.toISOString(), ...countsJson(b) })),
      })),
    },
    outbox: {
      webhooks: {
        unrelayed: o.outbox.webhooks.unrelayed,
        oldestUnrelayedSeconds: secondsSince(now, o.outbox.webhooks.oldestUnrelayedAt),
        deliveriesPending: o.outbox.webhooks.deliveriesPending,
        oldestPendingSeconds: secondsSince(now, o.outbox.webhooks.oldestPendingAt),
        deliveriesDue: o.outbox.webhooks.deliveriesDue,
        oldestDueSeconds: secondsSince(now, o.outbox.webhooks.oldestDueAt),
      },
      kafka: o.outbox.kafka
        ? {
            unpublished: o.outbox.kafka.unpublished,
            oldestUnpublishedSeconds: secondsSince(now, o.outbox.kafka.oldestUnpublishedAt),
            deadLettered: o.outbox.kafka.deadLettered,
          }
        : null,
    },
    subscriptions: {
      total: o.subscriptions.total,
      data: o.subscriptions.data.map((s) => ({
        id: s.id,
        merchant: { id: s.merchantId, name: s.merchantName },
        url: s.url,
        enabled: s.enabled,
        disabledReason: s.disabledReason,
        updatedAt: s.updatedAt.toISOString(),
        failingDeliveries: s.failingDeliveries,
        oldestFailingSeconds: secondsSince(now, s.oldestFailingAt),
        lastStatusCode: s.lastStatusCode,
        lastError: s.lastError,
        lastFailureAt: iso(s.lastFailureAt),
      })),
    },
  };
}

function storyJson(story: OrderStory) {
  const { attempts, history, reviews, ...order } = orderDetailJson(
    story.order,
    story.history,
    story.attempts,
    story.reviews,
  );
  return {
    object: 'payment_order_story',
    order: { ...order, merchant: { id: story.order.merchantId, name: story.merchantName } },
    history,
    reviews,
    attempts: attempts.map((a, i) => ({
      ...a,
      idempotencyKey: story.attempts[i]?.idempotencyKey ?? null,
      gateGrants: story.attempts[i]?.gateGrants ?? 1,
    })),
    attemptsTotal: story.attemptsTotal,
    callbacks: story.callbacks.map((c) => ({ ...c, receivedAt: c.receivedAt.toISOString() })),
    events: story.events.map((e) => ({
      id: e.id,
      type: e.type,
      createdAt: e.createdAt.toISOString(),
      relayedAt: iso(e.relayedAt),
      kafka: { publishedAt: iso(e.kafkaPublishedAt), deadAt: iso(e.kafkaDeadAt), error: e.kafkaError },
      deliveries: e.deliveries.map((d) => ({
        id: d.id,
        subscriptionId: d.subscriptionId,
        url: d.subscriptionUrl,
        status: d.status,
        attemptCount: d.attemptCount,
        nextAttemptAt: iso(d.nextAttemptAt),
        lastStatusCode: d.lastStatusCode,
        lastError: d.lastError,
        deliveredAt: iso(d.deliveredAt),
        createdAt: d.createdAt.toISOString(),
        updatedAt: d.updatedAt.toISOString(),
        attempts: d.attempts.map((a) => ({
          number: a.number,
          startedAt: a.startedAt.toISOString(),
          endedAt: iso(a.endedAt),
          statusCode: a.statusCode,
          latencyMs: a.latencyMs,
          error: a.error,
        })),
      })),
    })),
  };
}
