/**
 * The environment for a child process a test starts (a CLI, the gateway): the parent's, without
 * tap's own loader and coverage hooks, which would slow the child down and mix into its output.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_OPTIONS' || name.startsWith('TAP') || name.startsWith('_TAPJS') || name === 'NODE_V8_COVERAGE')
      continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}
