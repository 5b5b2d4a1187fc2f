// `npm run ops -- export`: loaded only for that command, so that the other commands and --help
// start without the database driver, the embedded PostgreSQL and the configuration schema.
import { ConfigError, loadConfig } from '../config/config.ts';
import { copyExport, EXPORT_FORMATS, EXPORT_KINDS, type ExportFormat, type ExportKind } from '../db/order-export.ts';
import { withCliDatabase } from './database.ts';

export type ExportOptions = Readonly<{ from: string; to: string; format: string; what: string }>;

/** A wrong option value or configuration: the CLI's exit 2. */
export class ExportUsageError extends Error {}

/** Streams the export to stdout; returns the number of rows. */
export async function runExport(options: ExportOptions): Promise<number> {
  const format = oneOf(options.format, EXPORT_FORMATS, '--format') as ExportFormat;
  const kind = oneOf(options.what, EXPORT_KINDS, '--what') as ExportKind;
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new ExportUsageError(error.message);
    throw error;
  }
  // A reader: it never migrates the database it reads (see withCliDatabase).
  return withCliDatabase(
    config,
    (_db, pool) => copyExport(pool, { kind, format, from: options.from, to: options.to }, process.stdout),
    { migrate: false },
  );
}

function oneOf(value: string, allowed: readonly string[], name: string): string {
  if (!allowed.includes(value)) throw new ExportUsageError(`${name} must be one of ${allowed.join(', ')}`);
  return value;
}
