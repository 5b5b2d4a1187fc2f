import { Router } from 'express';
import type { Metrics } from '../../metrics/metrics.ts';

export type MetricsRoutesDeps = Readonly<{
  metrics: Metrics;
  /** Brings the database-wide gauges up to date before a scrape. */
  refresh: () => Promise<void>;
}>;

/**
 * GET /metrics in Prometheus's text format. Like /healthz it needs no API key: it carries no
 * merchant's data (aggregates only, no ids), and belongs on the operators' network.
 */
export function metricsRoutes(deps: MetricsRoutesDeps): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    await deps.refresh();
    const body = await deps.metrics.registry.metrics();
    res.type(deps.metrics.registry.contentType).send(body);
  });
  return router;
}
