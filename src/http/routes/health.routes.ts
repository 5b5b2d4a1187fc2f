import { Router } from 'express';
import { sql } from 'kysely';
import type { Db } from '../../db/connection.ts';
import { VERSION } from '../../lib/version.ts';
import { DATABASE_RETRY_AFTER_SECONDS } from '../middleware.ts';
import { problemFor, sendProblem } from '../problem.ts';

const READY_TIMEOUT_MS = 2_000;

export function healthRoutes(db: Db): Router {
  const router = Router();

  /** The process is up and serving HTTP. */
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: VERSION });
  });

  /** The database answers a query within 2 s; otherwise 503, so a load balancer stops sending. */
  router.get('/readyz', async (_req, res) => {
    try {
      await withTimeout(sql`select 1`.execute(db), READY_TIMEOUT_MS);
      res.json({ status: 'ready' });
    } catch {
      res.setHeader('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
      sendProblem(res, problemFor('database_unavailable', 'The database did not answer.'));
    }
  });

  return router;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
