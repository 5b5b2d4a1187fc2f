import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './child-env.ts';

/**
 * Runs a script with this Node, without tap's hooks, and exits with its status. Its parent is the
 * tap runner either way: the script is started by this process, which tap started, so the run id
 * it must use (the runner's pid) is handed down in TEST_RUN_ID.
 */
export function runClean(script: URL): void {
  const result = spawnSync(process.execPath, [fileURLToPath(script)], {
    stdio: 'inherit',
    env: childEnv({ TEST_RUN_ID: String(process.ppid) }),
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
