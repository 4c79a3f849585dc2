// Lighthouse 12's accessibility and best-practices scores of a few pages, signed in.
//
//   node tests/pages/lighthouse.mjs BASE JARS_DIR OUT_DIR "name jar path"...
//
// Each page is audited by the Lighthouse command line in Chromium (CHROME_PATH) with the
// session cookie of its user's curl cookie jar; both scores must be at least 95. Below
// that, the audits that lost points are listed. Modules come from NODE_PATH.

import { mkdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { cookieHeader } from './jar.mjs';

const MIN = 95;
const [base, jarsDir, outDir, ...specs] = process.argv.slice(2);
if (!base || !jarsDir || !outDir || specs.length === 0) {
  console.error('usage: lighthouse.mjs BASE JARS_DIR OUT_DIR "name jar path"...');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const cli = join(process.env.NODE_PATH ?? '', 'lighthouse', 'cli', 'index.js');
const flags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
].join(' ');

let failures = 0;
for (const spec of specs) {
  const [name, jar, path] = spec.split(' ');
  const out = join(outDir, `${name}.json`);
  const cookie = cookieHeader(join(jarsDir, jar), base);
  const args = [
    cli,
    base + path,
    '--only-categories=accessibility,best-practices',
    '--output=json',
    `--output-path=${out}`,
    `--chrome-flags=${flags}`,
    '--quiet',
  ];
  if (cookie) args.push(`--extra-headers=${JSON.stringify({ Cookie: cookie })}`);
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (run.status !== 0) {
    console.log(`FAIL ${name}: lighthouse exited with ${run.status}`);
    failures += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(out, 'utf8'));
  const problems = [];
  if (report.finalDisplayedUrl !== base + path) {
    problems.push(`ended on ${report.finalDisplayedUrl} instead of ${base + path}`);
  }
  if (report.runtimeError) problems.push(`runtime error: ${report.runtimeError.message}`);
  const scores = [];
  for (const key of ['accessibility', 'best-practices']) {
    const cat = report.categories[key];
    const score = cat.score === null ? null : Math.round(cat.score * 100);
    scores.push(`${key} ${score}`);
    if (score === null || score < MIN) {
      problems.push(`${key} ${score} < ${MIN}`);
      for (const ref of cat.auditRefs) {
        const a = report.audits[ref.id];
        if (ref.weight > 0 && a.score !== null && a.score < 1) {
          problems.push(`    ${a.id}: ${a.title}`);
        }
      }
    }
  }
  if (problems.length) {
    failures += 1;
    console.log(`FAIL ${name} (${path} as ${jar}): ${scores.join(', ')}`);
    for (const p of problems) console.log(`  ${p}`);
  } else {
    console.log(`ok   ${name}: ${scores.join(', ')}`);
  }
}
process.exit(failures ? 1 : 0);
