// npm run ops -- redeliver | reenable | resolve | export ... [--json] | --help
import { parseArgs } from 'node:util';
import { parseIsoTimestamp } from './iso-timestamp.ts';
import { type Gateway, type GatewayAnswer, GatewayUnreachable, postToGateway } from './ops-gateway.ts';

const USAGE = `usage: npm run ops -- <command> [options] [--json]

Operator actions, through the gateway's operator API (the routes the operator console calls):
  redeliver <evt_id> [--subscription <whs_id>]
      send an event again, now: to that subscription of the event's merchant, or to every
      enabled subscription that wants the event's type
  reenable <whs_id>
      turn a webhook subscription back on (after a 410 or automatic disabling), clearing its
      disabled reason
  resolve <po_id> --status COMPLETED|FAILED --note "<why>" [--provider-reference <ref>]
      settle an order under review; the note is kept in the order's history

Export, straight from the database (PostgreSQL COPY, streamed to stdout):
  export --from <ISO> --to <ISO> [--format csv|ndjson] [--what orders|transitions|attempts]
      the rows created in [from, to): orders (default), their status transitions, or their
      provider calls; csv with a header row (default) or one JSON object a line. No secrets
      (no payment method details, callback tokens or API keys).

  --help   this text (needs neither the gateway nor a database)
  --json   the gateway's answer as one JSON document on stdout (a refusal: its problem document)

Exit codes: 0 done; 1 refused by the gateway or failed (the problem's code and detail on
stderr); 2 usage error.

Environment:
  GATEWAY_URL    the gateway's base URL (default http://127.0.0.1:$PORT, PORT default 3000)
  OPERATOR_KEY   an operator key, op_... (npm run keys -- create-operator <name>)
  DATABASE_URL   export only: the database (unset: the embedded one in DATA_DIR)
Timestamps: 2025-01-31 (midnight UTC), 2025-01-31T12:00:00Z or 2025-01-31T14:00:00.5+02:00
(a time needs its zone). npm prints its own banner on stdout: export with --silent,
  npm run --silent ops -- export --from 2025-01-01 --to 2025-02-01 > orders.csv`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  subscription: { type: 'string' },
  status: { type: 'string' },
  note: { type: 'string' },
  'provider-reference': { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  format: { type: 'string' },
  what: { type: 'string' },
} as const;

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;
type Command = Readonly<{
  /** Positional arguments after the command's name. */
  positionals: number;
  /** The options it takes besides --json and --help. */
  options: readonly (keyof typeof OPTIONS)[];
  run(args: readonly string[], values: Values): Promise<number>;
}>;

class UsageError extends Error {}

let json = false;

const commands: Record<string, Command> = {
  redeliver: {
    positionals: 1,
    options: ['subscription'],
    async run([eventId], values) {
      const subscriptionId = values.subscription as string | undefined;
      const answer = await callGateway(
        `operator/events/${encodeURIComponent(eventId as string)}/redeliver`,
        subscriptionId === undefined ? undefined : { subscriptionId },
      );
      return report(answer, (body: { data: Array<{ id: string; status: string }> }) =>
        body.data.length === 0
          ? `${eventId}: nothing to send (no enabled subscription of its merchant wants it)\n`
          : `${eventId} redelivered: ${body.data.length} ${body.data.length === 1 ? 'delivery' : 'deliveries'}\n${body.data
              .map((d) => `  ${d.id}  ${d.status}\n`)
              .join('')}`,
      );
    },
  },
  reenable: {
    positionals: 1,
    options: [],
    async run([subscriptionId]) {
      const answer = await callGateway(
        `operator/webhook-subscriptions/${encodeURIComponent(subscriptionId as string)}/enable`,
      );
      return report(
        answer,
        (body: { id: string; merchantId: string; url: string }) =>
          `${body.id} enabled (merchant ${body.merchantId}): ${body.url}\n`,
      );
    },
  },
  resolve: {
    positionals: 1,
    options: ['status', 'note', 'provider-reference'],
    async run([orderId], values) {
      const status = values.status;
      if (status !== 'COMPLETED' && status !== 'FAILED') throw new UsageError('--status must be COMPLETED or FAILED');
      const note = values.note;
      if (typeof note !== 'string' || note.trim() === '') {
        throw new UsageError('--note "<why>" is required (it is kept in the order history)');
      }
      const providerReference = values['provider-reference'] as string | undefined;
      const answer = await callGateway(`payment-orders/${encodeURIComponent(orderId as string)}/resolve`, {
        status,
        note,
        ...(providerReference === undefined ? {} : { providerReference }),
      });
      return report(
        answer,
        (body: { id: string; status: string; providerReference: string | null }) =>
          `${body.id} resolved: ${body.status}${body.providerReference ? ` (provider reference ${body.providerReference})` : ''}\n`,
      );
    },
  },
  export: {
    positionals: 0,
    options: ['from', 'to', 'format', 'what'],
    async run(_args, values) {
      if (json) throw new UsageError('--json does not apply to export (use --format ndjson)');
      const from = instant(values.from, '--from');
      const to = instant(values.to, '--to');
      if (from.micros >= to.micros) throw new UsageError('--from must be before --to');
      const { runExport, ExportUsageError } = await import('./ops-export.ts');
      const what = (values.what as string | undefined) ?? 'orders';
      let rows: number;
      try {
        rows = await runExport({
          from: from.text,
          to: to.text,
          format: (values.format as string | undefined) ?? 'csv',
          what,
        });
      } catch (error) {
        throw error instanceof ExportUsageError ? new UsageError(error.message) : error;
      }
      process.stderr.write(`exported ${rows} ${what} created in [${from.text}, ${to.text})\n`);
      return 0;
    },
  },
};

function instant(value: string | boolean | undefined, name: string) {
  if (typeof value !== 'string') throw new UsageError(`${name} <ISO timestamp> is required`);
  const parsed = parseIsoTimestamp(value);
  if (!parsed) {
    throw new UsageError(`${name} '${value}' is not an ISO 8601 timestamp (2025-01-31 or 2025-01-31T12:00:00Z)`);
  }
  return parsed;
}

/** GATEWAY_URL (or http://127.0.0.1:$PORT) and OPERATOR_KEY, checked before anything is sent. */
function gatewayFromEnv(env: NodeJS.ProcessEnv = process.env): Gateway {
  const operatorKey = env.OPERATOR_KEY;
  if (!operatorKey) throw new UsageError('OPERATOR_KEY is not set (npm run keys -- create-operator <name>)');
  const port = env.PORT || '3000';
  const base = env.GATEWAY_URL || `http://127.0.0.1:${port}`;
  let url: URL;
  try {
    // A trailing slash, so that a gateway behind a path prefix (https://ops.example/gateway) keeps it.
    url = new URL(base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new UsageError(`GATEWAY_URL '${base}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`GATEWAY_URL '${base}' must be an http or https URL`);
  }
  return { url, operatorKey };
}

function callGateway(path: string, body?: unknown): Promise<GatewayAnswer> {
  return postToGateway(gatewayFromEnv(), path, body);
}

/** The answer on stdout (text, or the document with --json); a refusal's code and detail on stderr. */
function report<B>(answer: GatewayAnswer, text: (body: B) => string): number {
  if (answer.ok) {
    process.stdout.write(json ? `${JSON.stringify(answer.body)}\n` : text(answer.body as B));
    return 0;
  }
  const { problem } = answer;
  if (json) process.stdout.write(`${JSON.stringify(problem)}\n`);
  process.stderr.write(`refused: ${problem.code} (HTTP ${problem.status}): ${problem.detail}\n`);
  return 1;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    if (argv.includes('--help') || argv.includes('-h')) return help();
    return usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return help();
  json = values.json === true;
  const [name, ...args] = positionals;
  const command = name === undefined ? undefined : commands[name];
  if (!command)
    return usage(name === undefined ? 'a command is required' : `unknown command '${name}'`, name === undefined);
  const stray = Object.keys(values).filter(
    (option) => option !== 'json' && !command.options.includes(option as keyof typeof OPTIONS),
  );
  if (stray.length > 0) return usage(`${name} does not take --${stray.join(', --')}`);
  if (args.length !== command.positionals) {
    return usage(
      `${name} takes ${command.positionals === 0 ? 'no' : command.positionals} argument${command.positionals === 1 ? '' : 's'}`,
    );
  }
  try {
    return await command.run(args, values);
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    if (error instanceof GatewayUnreachable) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    // The reader of an export went away (`| head`): nothing is wrong, there is no one to tell.
    if ((error as { code?: string }).code === 'EPIPE') return 0;
    process.stderr.write(`${name} failed: ${(error as Error).message}\n`);
    return 1;
  }
}

function help(): number {
  process.stdout.write(`${USAGE}\n`);
  return 0;
}

/** A usage error: what is wrong, and where the usage is (all of it when there was no command at all). */
function usage(problem: string, full = false): number {
  process.stderr.write(full ? `${problem}\n\n${USAGE}\n` : `${problem}\n(npm run ops -- --help for the usage)\n`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
