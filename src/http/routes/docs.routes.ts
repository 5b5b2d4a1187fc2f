import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { type Response, Router, static as serveStatic } from 'express';
import { ERROR_CODES, type ErrorCode } from '../../lib/error-codes.ts';
import { escapeHtml, page, prose } from '../docs/html.ts';
import { receivingEventsPage } from '../docs/receiving-events.ts';
import { buildOpenApiDocument } from '../openapi/document.ts';
import { HttpError, PROBLEMS } from '../problem.ts';
import { PROBLEM_DOCS } from '../problem-docs.ts';

/** Our pages load nothing from elsewhere; Swagger UI sets inline styles, nothing else inline. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

/** Swagger UI's files, from its npm package (swagger-ui-dist ships them ready to serve). */
const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const SWAGGER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment order gateway — API reference</title>
<link rel="stylesheet" href="/docs/ui/swagger-ui.css">
<link rel="icon" href="/docs/ui/favicon-32x32.png">
</head>
<body>
<p style="font: 14px system-ui, sans-serif; margin: 1rem 2rem">
<a href="/docs/receiving-events">Receiving events</a> · <a href="/problems">Problem codes</a> · <a href="/openapi.json">openapi.json</a> · <a href="/console">Operator console</a></p>
<div id="swagger-ui"></div>
<script src="/docs/ui/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-init.js"></script>
</body>
</html>
`;

// A file of our own rather than an inline script, so the page runs under script-src 'self'.
const SWAGGER_INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;

/**
 * The API explains itself, from this process alone (no CDN): the OpenAPI document, Swagger UI
 * (bundled from swagger-ui-dist), the guide to receiving events, and a page per problem code
 * (what a problem's `type` points to). No key: none of it is a merchant's data.
 */
export function docsRoutes(): Router {
  const router = Router();
  // Built once: the document depends only on the code.
  const document = JSON.stringify(buildOpenApiDocument());
  const guide = receivingEventsPage();
  const html = (body: string) => (_req: unknown, res: Response) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.type('text/html').send(body);
  };

  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });
  router.get('/docs', html(SWAGGER_PAGE));
  router.get('/docs/swagger-init.js', (_req, res) => {
    res.type('text/javascript').send(SWAGGER_INIT);
  });
  router.use('/docs/ui', serveStatic(SWAGGER_UI_DIR, { index: false, fallthrough: false, maxAge: '1h' }));
  router.get('/docs/receiving-events', html(guide));
  router.get('/problems', html(problemIndexPage()));
  router.get('/problems/:code', (req, res) => {
    const code = String(req.params.code);
    if (!(ERROR_CODES as readonly string[]).includes(code)) {
      throw new HttpError('resource_missing', `No such problem code: '${code}'`, { details: { resource: 'problem' } });
    }
    html(problemPage(code as ErrorCode))(req, res);
  });
  return router;
}

function problemPage(code: ErrorCode): string {
  const { status, title } = PROBLEMS[code];
  const docs = PROBLEM_DOCS[code];
  return page(
    `${code} — ${title}`,
    `<h1><code>${escapeHtml(code)}</code></h1>
<p><strong>${escapeHtml(title)}</strong> · HTTP ${status} · ${docs.retry ? 'safe to retry' : 'do not retry unchanged'}</p>
<h2>What it means</h2>
<p>${prose(docs.meaning)}</p>
<h2>What to do</h2>
<p>${prose(docs.action)}</p>
<p>${prose("Every problem is `application/problem+json` (RFC 9457): `type` (this page), `title`, `status`, `code` (stable: switch on it), `detail` (for people), and for some codes `errors`, `param`, `providers` or `resource`; `requestId` names the request in the gateway's logs.")}</p>`,
  );
}

function problemIndexPage(): string {
  const rows = ERROR_CODES.map((code) => {
    const { status, title } = PROBLEMS[code];
    return `<tr><td><a href="/problems/${code}"><code>${code}</code></a></td><td>${status}</td><td>${escapeHtml(title)}</td></tr>`;
  }).join('\n');
  return page(
    'Problem codes',
    `<h1>Problem codes</h1>\n<table>\n<tr><th>code</th><th>status</th><th>title</th></tr>\n${rows}\n</table>`,
  );
}
