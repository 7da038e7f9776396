/**
 * Where settings come from: the process environment, plus a `.env` file in the working directory
 * when there is one. Variables already set in the environment win over the file, as with
 * `node --env-file`. This is the only module that touches process.env.
 *
 * The file is read here, once, and parsed with Node's own .env parser (util.parseEnv), rather than
 * handed to process.loadEnvFile: that one reads a byte-order mark (which some Windows editors write)
 * as part of the first name, so `NODE_ENV=production` on the first line would be lost without a word,
 * and it throws with a stack trace for a .env it cannot read (a folder, no permission).
 *
 * Node's .env reader skips what it cannot read without a word, so a typo would silently leave a
 * default in place (`SESION_MAX_AGE=5s`, `PORT 8200`). The file is checked too, and what Node makes of
 * it (parseEnv, whatever the Node version) is the measure: a line that does not set the name its
 * author wrote, a value cut short or run on, and a name that is not a setting but looks like one,
 * each give a start-up warning. A file that is not text Node can read at all (UTF-16) stops start-up.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { parseEnv } from 'node:util';
import type { Environment } from './parsers.ts';
import { StartupError } from './startup-error.ts';

export interface EnvironmentReading {
  readonly env: Environment;
  /** What looks wrong in the .env file (logged at start; nothing stops). */
  readonly warnings: readonly string[];
}

/** Why a file could not be read, in words, for the common cases. */
const READ_ERRORS: Readonly<Record<string, string>> = {
  EISDIR: 'it is a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a symbolic link that leads back to itself',
};

/**
 * Loads the .env file (if there is one) into process.env under what is already set there. A .env
 * that exists but cannot be read stops start-up: the settings it holds would be silently missing.
 */
export function readEnvironment(knownNames: readonly string[], envFile = '.env'): EnvironmentReading {
  let bytes: Buffer;
  try {
    bytes = readFileSync(envFile);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ENOENT') {
      // A link to nothing (a volume not mounted, a secret not yet written) is a file meant to be there.
      const target = linkTarget(envFile);
      if (target === undefined) return { env: process.env, warnings: [] };
      const reason = `a symbolic link to ${target}, which does not exist`;
      throw new StartupError(envFile, `${envFile} cannot be read (${reason})`, { cause: error });
    }
    const reason = code !== undefined && code in READ_ERRORS ? `${code}: ${READ_ERRORS[code]}` : message;
    throw new StartupError(envFile, `${envFile} cannot be read (${reason})`, { cause: error });
  }
  // Node reads UTF-8 only: UTF-16 (Windows' "Unicode") would come out as one garbled name per line.
  if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff])) {
    throw new StartupError(envFile, `${envFile} is UTF-16; save it as UTF-8`);
  }
  if (bytes.includes(0)) {
    throw new StartupError(envFile, `${envFile} holds NUL bytes (UTF-16 without a byte-order mark?); save it as UTF-8`);
  }
  const warnings: string[] = [];
  const badLine = firstLineNotUtf8(bytes);
  if (badLine !== undefined) {
    warnings.push(
      `${envFile} line ${badLine} is not UTF-8 (another encoding, Latin-1 say): ` +
        'Node reads each byte it cannot decode as U+FFFD; save the file as UTF-8',
    );
  }
  let text = bytes.toString('utf8');
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (process.env[name] === undefined) process.env[name] = value;
  }
  warnings.push(...checkEnvFile(text, knownNames, envFile));
  return { env: process.env, warnings };
}

/** Where a symbolic link points, or undefined when the path is no link (or nothing at all). */
function linkTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

function startsWith(bytes: Buffer, prefix: readonly number[]): boolean {
  return prefix.every((byte, index) => bytes[index] === byte);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The number of the first line that is not valid UTF-8, if there is one. */
function firstLineNotUtf8(bytes: Buffer): number | undefined {
  try {
    strictUtf8.decode(bytes);
    return undefined;
  } catch {
    let start = 0;
    for (let line = 1; ; line++) {
      const end = bytes.indexOf(0x0a, start);
      try {
        strictUtf8.decode(bytes.subarray(start, end === -1 ? bytes.length : end));
      } catch {
        return line;
      }
      if (end === -1) return undefined;
      start = end + 1;
    }
  }
}

/** Node's reader strips `export ` with exactly one space; any other spacing makes another name (or none). */
const ODDLY_SPACED_EXPORT = /^\s*export(?! \S)\s+[A-Za-z_]/;
/** A name the app can read: what a shell takes as a variable name. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** What may surround a name unseen: tabs, Unicode spaces (no-break, ideographic), a byte-order mark, zero widths. */
const UNSEEN_AROUND = /^[\s\u200B-\u200D\u2060]+|[\s\u200B-\u200D\u2060]+$/g;
/** A line that looks like it sets something (inside a quoted value that runs over it). */
const LOOKS_LIKE_SETTING = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/;
/** The shape of a setting's name (PORT aside), which a line of base64 (a PEM key in quotes) never has. */
const SETTING_LIKE_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;
/** Our settings' families: an unknown name with one of these prefixes is most likely a typo. */
const OUR_PREFIXES = ['SESSION_', 'REDIS_', 'HTTP_', 'LOG_', 'SHUTDOWN_'];

/** Where a value ends, as Node reads it. */
interface ValueExtent {
  /** The quote that opens the value, when Node reads it as quoted (or it is never closed). */
  readonly quote?: string;
  readonly unclosed?: boolean;
  /** The index of the value's last line: a quoted value may span lines (Node's rule, for all three quotes). */
  readonly lastLine: number;
  /** The text after the closing quote, on the last line (Node ignores it). */
  readonly after?: string;
}

function valueExtent(lines: readonly string[], index: number, equals: number): ValueExtent {
  const line = lines[index];
  const open = /^[ \t]*(["'`])/.exec(line.slice(equals + 1));
  if (open === null) return { lastLine: index };
  const quote = open[1];
  const close = line.indexOf(quote, equals + 1 + open[0].length);
  if (close !== -1) return { quote, lastLine: index, after: line.slice(close + 1) };
  for (let last = index + 1; last < lines.length; last++) {
    const closeAt = lines[last].indexOf(quote);
    if (closeAt === -1) continue;
    // Node's own reading says whether the quote spans lines (Node 20 lets it only after spaces, not a tab).
    const [value] = Object.values(parseEnv(`${lines.slice(index, last + 1).join('\n')}\n`));
    return value?.includes('\n')
      ? { quote, lastLine: last, after: lines[last].slice(closeAt + 1) }
      : { lastLine: index };
  }
  return { quote, unclosed: true, lastLine: index };
}

/** Text for a warning, in quotes, with anything unseen or outside printable ASCII escaped (\u00a0). */
function shown(text: string): string {
  return JSON.stringify(text).replace(/[^ -~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The start of a line that is not NAME=value, for a warning: its first word only. The rest may be a
 * value (a forgotten `=`: `REDIS_URL redis://:password@host`), and warnings reach the logs.
 */
function lineStart(line: string): string {
  const text = line.trim();
  const head = /^[^ \t=:]{0,40}/.exec(text)?.[0] ?? '';
  return shown(head.length === text.length ? text : `${head} ...`.trimStart());
}

/** The line number (from 1) of the character at `offset`. */
function lineAt(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

/**
 * Warnings for the lines of a .env file that cannot do what their author meant, in line order. Each
 * entry (a line, or the lines a quoted value spans) is read by Node's parser on its own, which says
 * what name and value it sets; the whole file read at once must then agree, or a line above or below
 * changes what Node reads (Node 20 joins a line without = to the next name; Node 22 and later run a value of
 * spaces alone on into the next line).
 */
export function checkEnvFile(text: string, knownNames: readonly string[], fileName = '.env'): string[] {
  const warnings: Array<{ line: number; text: string }> = [];
  const warn = (line: number, message: string) => warnings.push({ line, text: `${fileName} line ${line}${message}` });
  const loneReturn = /\r(?!\n)/.exec(text);
  if (loneReturn !== null) {
    warn(
      lineAt(text, loneReturn.index),
      ' ends in a carriage return alone (old Mac line ends): Node sees no line end there and runs the ' +
        'lines after it into this one; save the file with LF line ends',
    );
  }
  // Node drops every carriage return, so CRLF ends a line as LF does.
  const lines = text.replaceAll('\r', '').split('\n');
  /** The last line that sets each name (Node keeps the last) and the value that line sets on its own. */
  const lastSet = new Map<string, { line: number; value: string }>();
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    const number = index + 1;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const equals = line.indexOf('=');
    if (equals === -1) {
      warn(number, ` is not NAME=value and is ignored: ${lineStart(line)}`);
      continue;
    }
    const extent = valueExtent(lines, index, equals);
    const spanned = lines.slice(index + 1, extent.lastLine + 1);
    index = extent.lastLine;
    if (ODDLY_SPACED_EXPORT.test(line)) {
      warn(number, ': write "export NAME=value" with a single space, or Node may read another name');
      continue;
    }
    // With its line end: Node 20 drops a last line with an unclosed quote when nothing follows it.
    const [name, value] = Object.entries(parseEnv(`${[line, ...spanned].join('\n')}\n`))[0] ?? [];
    if (name === undefined || value === undefined || !NAME.test(name)) {
      const meant = name?.replace(UNSEEN_AROUND, '');
      if (name !== undefined && meant !== undefined && NAME.test(meant)) {
        warn(
          number,
          `: Node reads the name as ${shown(name)} (with an unseen or non-ASCII character), not ${meant}, ` +
            `so ${meant} is not set: retype the name`,
        );
      } else {
        warn(number, ` is not NAME=value and is ignored: ${lineStart(line)}`);
      }
      continue;
    }
    // A quote never closed is warned about below; what Node makes of it varies (Node 20: nothing at the end).
    if (!extent.unclosed) lastSet.set(name, { line: number, value });
    checkValue(name, value, line.slice(equals + 1), extent, spanned, knownNames, (message) => warn(number, message));
    if (knownNames.includes(name)) continue;
    const meant = closestName(name, knownNames);
    if (meant !== undefined) {
      warn(number, `: ${name} is not a setting of this app; did you mean ${meant}?`);
    } else if (OUR_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      warn(number, `: ${name} is not a setting of this app (see .env.example)`);
    }
  }
  // The whole file at once: what a line sets on its own must survive the lines around it.
  const whole = parseEnv(text);
  for (const [name, { line, value }] of lastSet) {
    if (!Object.hasOwn(whole, name)) {
      let above = line - 2;
      while (above >= 0 && lines[above] === '') above--;
      const fix =
        above < 0
          ? 'fix the lines above'
          : lines[above].trim() === ''
            ? `line ${above + 1} holds only blanks: empty it`
            : `fix line ${above + 1}`;
      warn(line, `: Node reads this line as part of a line above it, so ${name} is not set: ${fix}`);
    } else if (whole[name] !== value) {
      const written = lines[line - 1].slice(lines[line - 1].indexOf('=') + 1);
      const fix = written.trim() === '' ? 'the value is blanks alone: delete them' : 'end the value on this line';
      warn(line, `: Node reads the value of ${name} on past the end of this line: ${fix}`);
    }
  }
  return warnings.sort((a, b) => a.line - b.line).map((warning) => warning.text);
}

/** What Node does to a value that its author would not expect: cut short, never closed, or running over settings. */
function checkValue(
  name: string,
  value: string,
  written: string,
  extent: ValueExtent,
  spanned: readonly string[],
  knownNames: readonly string[],
  warn: (message: string) => void,
): void {
  if (extent.quote === undefined) {
    // The first # ends an unquoted value; after a space it is the comment its author meant (PORT=8200 # ours).
    const hash = written.indexOf('#');
    if (hash !== -1 && !/\s/.test(written[hash - 1] ?? '=') && !value.includes('#')) {
      warn(`: the value of ${name} is cut at # (Node reads the rest as a comment): quote it`);
    }
    return;
  }
  if (extent.unclosed) {
    warn(`: the ${extent.quote} that opens the value of ${name} is never closed: close it`);
    return;
  }
  const overRun = spanned
    .map((line) => LOOKS_LIKE_SETTING.exec(line)?.[1])
    .find((runName) => runName !== undefined && (knownNames.includes(runName) || SETTING_LIKE_NAME.test(runName)));
  if (overRun !== undefined) {
    warn(
      `: the ${extent.quote} that opens the value of ${name} closes only ${spanned.length} line(s) below, ` +
        `so the value takes in the line that sets ${overRun}: close the quote on this line`,
    );
    return;
  }
  const after = extent.after?.trim() ?? '';
  if (after !== '' && !after.startsWith('#') && !value.includes(after)) {
    warn(`: the text after the closing ${extent.quote} of ${name} is ignored: put it inside the quotes`);
  }
}

/** The known name within two edits of `name` (case aside), if there is one. */
function closestName(name: string, knownNames: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const known of knownNames) {
    const distance = editDistance(name.toUpperCase(), known);
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name: known, distance };
  }
  return best?.name;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
