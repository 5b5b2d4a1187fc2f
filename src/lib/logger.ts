import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Secrets never reach them: request logging is built from an allow-list of
 * fields (see http/request-logging.ts), and these paths are redacted wherever else they appear.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'payment-order-gateway' },
    redact: {
      paths: [
        'authorization',
        'apiKey',
        'secret',
        'password',
        'paymentMethod',
        '*.authorization',
        '*.apiKey',
        '*.secret',
        '*.password',
        '*.paymentMethod',
        'req.headers.authorization',
        'databaseUrl',
      ],
      censor: '[redacted]',
    },
  });
}
