# syntax=docker/dockerfile:1
# Payment order gateway. Node 24 runs the TypeScript sources directly (type stripping): no build step.
# Needs DATABASE_URL at run time (compose.yaml sets it); without it the service would start the
# embedded PostgreSQL in /app/.data, which is meant for local development.
FROM node:24-slim

WORKDIR /app

ENV NODE_ENV=production

# Production dependencies only, from the lockfile. The dev dependency `node` (a Node binary used
# by the npm scripts in development) is omitted, so `node` below is the base image's Node 24.
# The install runs as root and the files stay root-owned: the service cannot modify its own code.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev \
  && npm cache clean --force \
  && test ! -e node_modules/.bin/node \
  && node -e "if (process.versions.node.split('.')[0] !== '24') { console.error('expected Node 24, got ' + process.version); process.exit(1) }"

# src/db/migrate.ts reads the migrations from ../../sql/ relative to itself, i.e. /app/sql/.
COPY src/ ./src/
COPY sql/ ./sql/
# The provider sandbox: npm start points adapters without credentials at it.
COPY sandbox/ ./sandbox/
# GET /docs/receiving-events shows docs/examples/webhook-receiver.ts, read from ../../../docs/.
COPY docs/ ./docs/

# The only place the service may write: DATA_DIR (demo API key file, embedded PostgreSQL when
# DATABASE_URL is unset). Owned by the unprivileged `node` user of the official image.
RUN mkdir -p /app/.data && chown node:node /app/.data

USER node

ENV PORT=3000 \
    HOST=0.0.0.0

EXPOSE 3000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node as PID 1: main.ts handles SIGTERM/SIGINT itself (graceful stop, exit 0).
CMD ["node", "src/main.ts"]
