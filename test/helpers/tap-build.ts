// `npm test`'s pretest: `tap build`, once per plugin configuration. tap applies a plugin change (we
// turn its TypeScript plugin off) only after `tap build`, which rewrites
// node_modules/@tapjs/test/test-built in place: two builds at once (two `npm test` runs on one
// checkout) leave it half-written, and then no test starts. So the build runs under a lock, and not
// at all when a stamp says it was done for this configuration.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tapConfig = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).tap;
const wanted = createHash('sha256')
  .update(JSON.stringify(tapConfig.plugin ?? []))
  .digest('hex');
const stampFile = `${root}node_modules/.tap-build-stamp`;
const lockDir = `${root}node_modules/.tap-build-lock`;
const builtEntry = `${root}node_modules/@tapjs/test/test-built/dist/esm/index.js`;

const isBuilt = () => existsSync(builtEntry) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === wanted;

if (!isBuilt()) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      // A lock left by a killed build is stale after 5 minutes.
      const lockedAt = statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - lockedAt > 300_000) rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline)
        throw new Error(`another tap build holds ${lockDir}; remove it if no build is running`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    if (!isBuilt()) {
      rmSync(stampFile, { force: true });
      execFileSync('tap', ['build'], { stdio: 'inherit', cwd: root });
      writeFileSync(stampFile, wanted);
    }
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
