/**
 * A flat copy of a string that shares no memory with the caller's. V8 builds concatenations and
 * JSON.stringify results as trees of pieces (nanoid's 21-character ids take ~300 bytes that way; a
 * short JSON value ~100), and a regex capture from a Cookie header is a slice that keeps the whole
 * header alive. Strings held for long (stored sessions, cached cookies) should cost their length and
 * no more; a JSON round trip copies any string exactly. Measured with the memory store: 509 heap
 * bytes per session without it, under 200 with it (npm run bench).
 */
export function ownCopy(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}
