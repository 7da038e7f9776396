/**
 * A flat copy of a string that shares no memory with the caller's. V8 builds concatenations and
 * JSON.stringify results as trees of pieces, several times the size of their text, and a regex capture
 * from a Cookie header is a slice that keeps the whole header alive. Strings held for long (stored
 * sessions, cached cookies) should cost their length and no more; a JSON round trip copies any string
 * exactly. What it saves per stored session is in docs/benchmark.md.
 */
export function ownCopy(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}
