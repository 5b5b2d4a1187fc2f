// A child process for test/logging-format.test.ts: a logger made as the service makes it (the
// config's LOG_LEVEL and LOG_FORMAT from the environment), one line carrying every field the
// logger redacts, each holding the secret given in LOG_SAMPLE_SECRET.
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/lib/logger.ts';

const config = loadConfig();
const logger = createLogger(config.logLevel, { format: config.logFormat });
const secret = process.env.LOG_SAMPLE_SECRET ?? 'sk_sample';
logger.info(
  {
    req: { method: 'GET', headers: { authorization: `Bearer ${secret}` } },
    authorization: `Bearer ${secret}`,
    apiKey: secret,
    secret,
    password: secret,
    paymentMethod: { type: 'card', token: secret },
    webhook: { secret, apiKey: secret, password: secret },
    databaseUrl: `postgres://gateway:${secret}@db/gateway`,
    orderId: 'po_sample',
  },
  'a sample line with secrets',
);
// Exits at once: the line must be written even so (pretty output is written synchronously).
process.exit(0);
