// axe-core on every saved page type, in Debian's Chromium through playwright-core.
//
//   node tests/pages/axe.mjs BASE PAGES_TSV PAGES_DIR JARS_DIR
//
// PAGES_TSV lists `name  jar  path  mode` per line (written by .ci/pages). Each page is
// opened signed in as its user (the session cookie from curl's cookie jar `JARS_DIR/jar`).
// `live` pages are loaded from the portal; `saved` ones (answers to a POST: forms shown
// again with their errors, error pages; a single-use link) are served from
// PAGES_DIR/name.html with the headers the portal sent (name.headers) at their own
// address, with the portal's stylesheet; `html-only` ones are not checked here, and the
// output says so. Fails on any serious or critical violation, on a page that redirects
// elsewhere (a lost session would otherwise check the login page instead), and on
// anything the page logs as an error (a script or style the Content-Security-Policy
// blocks, a missing resource).
//
// Modules come from NODE_PATH (target/pages-node/node_modules, pinned by
// tests/pages/package-lock.json).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { cookiesOf } from './jar.mjs';

const [base, tsv, pagesDir, jarsDir] = process.argv.slice(2);
if (!base || !tsv || !pagesDir || !jarsDir) {
  console.error('usage: axe.mjs BASE PAGES_TSV PAGES_DIR JARS_DIR');
  process.exit(2);
}
const require = createRequire(join(process.env.NODE_PATH ?? '', 'noop.js'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const axeVersion = require('axe-core/package.json').version;

/** The headers the portal sent with a saved page (curl -D), so that it is shown under its
 *  own Content-Security-Policy; the status and the cookies are left out. */
function savedHeaders(path) {
  const headers = {};
  for (const line of readFileSync(path, 'utf8').split(/\r?\n/).slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (name !== 'set-cookie' && name !== 'content-length') headers[name] = line.slice(i + 1).trim();
  }
  return headers;
}

const rows = readFileSync(tsv, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => {
    const [name, jar, path, mode] = l.split('\t');
    return { name, jar, path, mode };
  });
if (rows.length === 0) {
  console.error('FAILED: no pages to check');
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROME_PATH || '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
console.log(`axe-core ${axeVersion} in Chromium ${browser.version()}`);

let failures = 0;
let checked = 0;
const contexts = new Map();
const notChecked = [];
for (const row of rows) {
  if (row.mode === 'html-only') {
    notChecked.push(row.name);
    console.log(`NOT CHECKED ${row.name} (${row.path}): left to the HTML checker by .ci/pages`);
    continue;
  }
  let context = contexts.get(row.jar);
  if (!context) {
    context = await browser.newContext({ locale: 'zh-CN' });
    await context.addCookies(cookiesOf(join(jarsDir, row.jar), base));
    contexts.set(row.jar, context);
  }
  const page = await context.newPage();
  const problems = [];
  const url = base + row.path;
  page.on('console', (m) => {
    // An error page's own status is logged as a failed load: that one is expected (curl
    // checked the status); any other failure is not.
    const own = m.location().url === url && m.text().startsWith('Failed to load resource');
    if (m.type() === 'error' && !own) problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  if (row.mode === 'saved') {
    const body = readFileSync(join(pagesDir, `${row.name}.html`));
    const headers = savedHeaders(join(pagesDir, `${row.name}.headers`));
    await page.route(
      (u) => u.href === url,
      (route) => route.fulfill({ status: 200, headers, body }),
    );
  }
  await page.goto(url, { waitUntil: 'load' });
  if (page.url() !== url) {
    problems.push(`went to ${page.url()} instead of ${url}`);
  }
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }),
  );
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = result.violations.filter((v) => !serious.includes(v));
  for (const v of serious) {
    problems.push(`${v.impact} ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const n of v.nodes.slice(0, 5)) {
      problems.push(`    at ${n.target.join(' ')}: ${n.failureSummary?.replace(/\n/g, ' ')}`);
    }
  }
  checked += 1;
  if (problems.length) {
    failures += 1;
    console.log(`FAIL ${row.name} (${row.path} as ${row.jar})`);
    for (const p of problems) console.log(`  ${p}`);
  } else {
    const note = minor.length ? `; moderate/minor: ${minor.map((v) => v.id).join(', ')}` : '';
    console.log(`ok   ${row.name}${note}`);
  }
  await page.close();
}
await browser.close();
console.log(`${checked} pages checked, ${failures} with problems`);
if (notChecked.length) console.log(`not checked with axe: ${notChecked.join(', ')}`);
process.exit(failures ? 1 : 0);
