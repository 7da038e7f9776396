// Applies one stage of the README's "Starting your own service" to the tree in the current folder,
// exactly as the README writes it: each step is a code block preceded by a marker comment
//   <!-- step a: write test/cart.test.ts -->                 the block is the file's content
//   <!-- step a: insert into app/routes.ts after "TEXT" -->  the block goes after the line holding TEXT
//   <!-- step b: run -->                                      the block is run with bash
// Usage: node .ci/readme-steps.mjs README.md a   (prints what it does; exits 1 if a step cannot apply)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [readmePath, stage] = process.argv.slice(2);
if (!readmePath || !stage) throw new Error('usage: readme-steps.mjs README.md STAGE');
const readme = readFileSync(readmePath, 'utf8');
// The marker, then a fenced block (indented as a list item's may be: the indent is taken off every line).
const STEP = /<!-- step (\w+): (.+?) -->[ \t]*\n([ \t]*)```[^\n]*\n([\s\S]*?)\n\3```/g;

const steps = [...readme.matchAll(STEP)].filter((match) => match[1] === stage);
if (steps.length === 0) fail(`the README has no step marked "step ${stage}"`);

for (const [, , action, indent, indented] of steps) {
  const block = `${indented
    .split('\n')
    .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()))
    .join('\n')}\n`;
  console.log(`step ${stage}: ${action}`);
  const write = /^write (\S+)$/.exec(action);
  const insert = /^insert into (\S+) after "(.+)"$/.exec(action);
  if (action === 'run') {
    try {
      execFileSync('bash', ['-euo', 'pipefail', '-c', block], { stdio: 'inherit' });
    } catch (error) {
      fail(`step ${stage}: the commands failed (exit ${error.status}):\n${block}`);
    }
  } else if (write) {
    writeFileSync(write[1], block);
  } else if (insert) {
    insertAfter(insert[1], insert[2], block);
  } else {
    fail(`unknown step: ${action}`);
  }
}

/** Inserts `block` after the one line of `file` that holds `anchor` (a line ending in `{}` is opened up first). */
function insertAfter(file, anchor, block) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const at = lines.flatMap((line, index) => (line.includes(anchor) ? [index] : []));
  if (at.length !== 1) fail(`${file}: ${at.length} lines hold ${JSON.stringify(anchor)}, not 1`);
  const index = at[0];
  const inserted = block.replace(/\n$/, '').split('\n');
  if (lines[index].trimEnd().endsWith('{}')) {
    const line = lines[index].trimEnd();
    lines.splice(index, 1, line.slice(0, -1), ...inserted, '}');
  } else {
    lines.splice(index + 1, 0, ...inserted);
  }
  writeFileSync(file, lines.join('\n'));
}

function fail(message) {
  console.error(`make-it-yours: ${message}`);
  process.exit(1);
}
