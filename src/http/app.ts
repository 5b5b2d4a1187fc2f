import express, { type Express } from 'express';
import type { Db } from '../db/connection.ts';
import type { CreatePaymentOrderDeps } from '../domain/create-payment-order.ts';
import type { ProcessDeps } from '../domain/process-payment-order.ts';
import type { ResolutionStore } from '../domain/resolve-payment-order.ts';
import type { Logger } from '../lib/logger.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';
import {
  authenticate,
  errorHandler,
  httpMetrics,
  type MerchantLookup,
  notFound,
  requestLogging,
} from './middleware.ts';
import type { OperatorLookup } from './operator-auth.ts';
import { callbackRoutes } from './routes/callbacks.routes.ts';
import { docsRoutes } from './routes/docs.routes.ts';
import { eventRoutes } from './routes/events.routes.ts';
import { healthRoutes } from './routes/health.routes.ts';
import { type MetricsRoutesDeps, metricsRoutes } from './routes/metrics.routes.ts';
import { operatorRoutes } from './routes/operator.routes.ts';
import { operatorActionRoutes } from './routes/operator-actions.routes.ts';
import { type ConsoleSettings, operatorConsoleRoutes } from './routes/operator-console.routes.ts';
import { paymentOrderRoutes } from './routes/payment-orders.routes.ts';
import { type WebhookRoutesDeps, webhookSubscriptionRoutes } from './routes/webhook-subscriptions.routes.ts';

export type AppDeps = Readonly<{
  db: Db;
  logger: Logger;
  lookupMerchant: MerchantLookup;
  createOrder: CreatePaymentOrderDeps;
  processing: Pick<ProcessDeps, 'store' | 'providers'>;
  lookupOperator: OperatorLookup;
  resolve: ResolutionStore;
  webhooks: WebhookRoutesDeps;
  enqueueDelivery: EnqueueDelivery;
  metrics: MetricsRoutesDeps;
  /** What the operator console shows of the configuration: the gate's limits, Kafka on or off. */
  operatorConsole: ConsoleSettings;
}>;

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestLogging(deps.logger));
  app.use(httpMetrics(deps.metrics.metrics));
  app.use(healthRoutes(deps.db));
  app.use(metricsRoutes(deps.metrics));
  app.use(docsRoutes());
  app.use(callbackRoutes({ processing: deps.processing, metrics: deps.metrics.metrics }));
  // Operator routes take their own key, so they come before the merchant authentication.
  app.use(operatorRoutes({ lookupOperator: deps.lookupOperator, resolve: deps.resolve }));
  app.use(operatorActionRoutes({ db: deps.db, lookupOperator: deps.lookupOperator, enqueue: deps.enqueueDelivery }));
  app.use(operatorConsoleRoutes({ db: deps.db, lookupOperator: deps.lookupOperator, settings: deps.operatorConsole }));
  app.use(
    authenticate(deps.lookupMerchant),
    paymentOrderRoutes({ db: deps.db, create: deps.createOrder }),
    webhookSubscriptionRoutes(deps.webhooks),
    eventRoutes({ db: deps.db, enqueue: deps.enqueueDelivery }),
  );
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
