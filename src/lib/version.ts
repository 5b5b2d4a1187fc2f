// The gateway's version, from package.json (CHANGELOG.md says what each one changed): in /healthz
// and in the webhook User-Agent, so a merchant or an operator can tell which build answered.
import { readFileSync } from 'node:fs';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
