// The architecture's rules (ARCHITECTURE.md), checked by `npm run lint` (depcruise). A violation
// fails the lint step, and so CI.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      comment: 'The domain knows nothing of HTTP, SQL, queues or the outside world: it imports only itself and lib/.',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { pathNot: '^src/(domain|lib)/' },
    },
    {
      name: 'providers-no-db-or-http',
      comment: 'Provider adapters speak to providers; they never reach into the database or the HTTP layer.',
      severity: 'error',
      from: { path: '^src/providers/' },
      to: { path: '^src/(db|http)/' },
    },
    {
      name: 'sandbox-not-in-production',
      comment:
        'The fake provider is not in the production import graph: only the sandbox itself, tests, benches and ' +
        'the providers subsystem (a dynamic import, when no credentials are configured) load it.',
      severity: 'error',
      from: { pathNot: '^(sandbox/|test/|bench/|src/subsystems/providers\\.ts$)' },
      to: { path: '^sandbox/' },
    },
    {
      name: 'sandbox-loaded-dynamically',
      comment: 'src/ may load the sandbox only with a dynamic import, when it is used.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^sandbox/', dynamic: false },
    },
    {
      name: 'row-types-stay-in-db',
      comment: 'Row types (src/db/schema.ts) never leave db/: the rest of the code sees domain types.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/db/' },
      to: { path: '^src/db/schema\\.ts$' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|\\.data|\\.tap)/' },
    tsPreCompilationDeps: true,
    // swc parses our TypeScript (TypeScript 7 has no compiler API for dependency-cruiser yet).
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
