// npm run openapi: writes the OpenAPI document to openapi.json (committed; test/openapi.test.ts
// fails when it is stale). --check: exit 1 if the file differs from what the code generates.
import { readFileSync, writeFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../http/openapi/document.ts';

const FILE = new URL('../../openapi.json', import.meta.url);

export function openApiText(): string {
  return `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;
}

if (import.meta.main) {
  const text = openApiText();
  if (process.argv.includes('--check')) {
    const current = (() => {
      try {
        return readFileSync(FILE, 'utf8');
      } catch {
        return '';
      }
    })();
    if (current !== text) {
      process.stderr.write('openapi.json is stale: run npm run openapi\n');
      process.exit(1);
    }
    process.stdout.write('openapi.json is up to date\n');
  } else {
    writeFileSync(FILE, text);
    process.stdout.write(`wrote openapi.json (${text.length} bytes)\n`);
  }
}
