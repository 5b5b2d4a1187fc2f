import { isatty } from 'node:tty';
import { type DestinationStream, type Logger, pino } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

/** json: one JSON object a line; pretty: human text; auto (the default): pretty on a terminal, else json. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export type LoggerOptions = Readonly<{
  format?: LogFormat;
  /** 1 (stdout, the service) or 2 (stderr, command-line tools, whose stdout is their output). */
  fd?: 1 | 2;
}>;

/**
 * Logs on stdout: JSON for machines (a pipe, a file, a log collector), human text on a terminal.
 * Secrets never reach them: request logging is built from an allow-list of fields (see
 * http/middleware.ts), and these paths are redacted wherever else they appear. Redaction is
 * pino's, before a line is written, so it is the same in both formats.
 */
export function createLogger(level: string, { format = 'auto', fd = 1 }: LoggerOptions = {}): Logger {
  const options = {
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
  };
  const pretty = format === 'pretty' || (format === 'auto' && isatty(fd));
  if (pretty) return pino(options, prettyDestination(fd));
  // pino's own default destination (asynchronous, flushed on exit) for stdout, as before.
  return fd === 1 ? pino(options) : pino(options, pino.destination(fd));
}

/**
 * pino's JSON line turned into text in this thread and written synchronously: a line is on the
 * terminal before a process.exit that follows it (pino-pretty's stream form is an asynchronous
 * pipeline, and a transport a worker thread, either of which can lose the last lines). A terminal
 * is a person reading, not a throughput path. Colours only on a real terminal (LOG_FORMAT=pretty
 * into a file stays plain).
 */
function prettyDestination(fd: 1 | 2): DestinationStream {
  const toText = prettyFactory({
    colorize: isatty(fd),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
  });
  const out = pino.destination({ dest: fd, sync: true });
  return { write: (line: string) => out.write(toText(line)) };
}
