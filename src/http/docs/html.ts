/** Text put into HTML: the five characters that could end a text node or an attribute, escaped. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** `code` spans in our own prose (never in user data): escaped, then the backticks become <code>. */
export function prose(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

/** A whole page in the docs' one style: no script, no external resource. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="/docs/ui/favicon-32x32.png">
<style>
body { font: 16px/1.55 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d232a; }
code, pre { font: 14px/1.45 ui-monospace, monospace; background: #f3f5f7; border-radius: 4px; }
code { padding: 0 .25em; }
h1 code { font-size: 1.8rem; }
pre { padding: 1rem; overflow-x: auto; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; }
td, th { text-align: left; padding: .3rem .8rem .3rem 0; border-bottom: 1px solid #e3e7eb; vertical-align: top; }
nav a { margin-right: 1rem; }
</style>
</head>
<body>
<nav><a href="/docs">API reference</a><a href="/docs/receiving-events">Receiving events</a><a href="/problems">Problem codes</a></nav>
${body}
</body>
</html>
`;
}
