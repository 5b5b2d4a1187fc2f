// tap `before` script. The work runs in a child without tap's loader and coverage hooks: the
// setup is not under test, and its coverage would otherwise be reported as the suite's.
import { runClean } from './run-clean.ts';

runClean(new URL('./prepare-database.ts', import.meta.url));
