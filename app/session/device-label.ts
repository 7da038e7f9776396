/**
 * A short name for the device a session was signed in on, for the user's list of sessions ("Firefox on
 * Linux", "Safari on iOS", "curl"). Read from the User-Agent at sign-in, which the client chooses: it
 * is a hint for the user, never evidence. Only a few known names come out, or the User-Agent's first
 * product name cut to printable ASCII, so a hostile header cannot put markup or a long text in the list.
 */

/** The longest label: the list shows it, the store keeps it per session. */
export const MAX_LABEL_LENGTH = 64;

/** Browsers, most specific first (Edge and Opera also say Chrome, Chrome also says Safari). */
const BROWSERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bEdg(e|A|iOS)?\//, 'Edge'],
  [/\b(OPR|Opera)\//, 'Opera'],
  [/\b(Firefox|FxiOS)\//, 'Firefox'],
  [/\b(Chrome|CriOS|Chromium)\//, 'Chrome'],
  [/\bVersion\/[\d.]+.*\bSafari\//, 'Safari'],
];

const SYSTEMS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(iPhone|iPad|iPod)\b/, 'iOS'],
  [/\bAndroid\b/, 'Android'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bWindows\b/, 'Windows'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b/, 'Linux'],
];

export function deviceLabel(userAgent: string | undefined): string {
  const agent = (userAgent ?? '').slice(0, 512);
  const browser = BROWSERS.find(([pattern]) => pattern.test(agent))?.[1];
  const system = SYSTEMS.find(([pattern]) => pattern.test(agent))?.[1];
  if (browser !== undefined) return system === undefined ? browser : `${browser} on ${system}`;
  // Not a browser: the first product name (curl/8.5.0 → curl), printable ASCII only.
  const product = /^[\x21-\x7e]+/.exec(agent)?.[0].split('/')[0].slice(0, MAX_LABEL_LENGTH);
  if (product === undefined || product === '') return 'unknown device';
  return system === undefined ? product : `${product} on ${system}`.slice(0, MAX_LABEL_LENGTH);
}
