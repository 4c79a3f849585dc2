// curl's cookie jars (Netscape format), read for the browser checks.

import { readFileSync } from 'node:fs';

/** The cookies of the jar at `path` as playwright wants them, for `base`; none when
 *  there is no jar (a visitor who never got a cookie). */
export function cookiesOf(path, base) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const cookies = [];
  for (let line of text.split('\n')) {
    let httpOnly = false;
    if (line.startsWith('#HttpOnly_')) {
      httpOnly = true;
      line = line.slice('#HttpOnly_'.length);
    } else if (line.startsWith('#') || !line.trim()) {
      continue;
    }
    const [, , cookiePath, secure, , name, value] = line.split('\t');
    cookies.push({
      name,
      value: value ?? '',
      url: base + cookiePath,
      httpOnly,
      secure: secure === 'TRUE',
      sameSite: 'Lax',
    });
  }
  return cookies;
}

/** The `Cookie` request header for the jar at `path` ('' when it holds none). */
export function cookieHeader(path, base) {
  return cookiesOf(path, base)
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}
