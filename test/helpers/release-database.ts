// Run by the tap `after` script: drop this run's template and stop the embedded PostgreSQL if no other run uses it.
import pg from 'pg';
import { TEMPLATE_DATABASE } from './database.ts';
import { adminUrl, releaseEmbeddedTestServer } from './test-server.ts';

const admin = new pg.Client({ connectionString: adminUrl() });
await admin.connect();
await admin.query(`drop database if exists "${TEMPLATE_DATABASE}" with (force)`);
await admin.end();
if (!process.env.DATABASE_URL) await releaseEmbeddedTestServer();
