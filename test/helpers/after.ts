// tap `after` script (see before.ts).
import { runClean } from './run-clean.ts';

runClean(new URL('./release-database.ts', import.meta.url));
