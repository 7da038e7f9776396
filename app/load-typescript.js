// Node 22.18+ and 24+ run TypeScript themselves (type stripping): `node app/main.ts` needs nothing
// more, and production runs exactly that, with production dependencies only. Node 20 (end of life,
// still working here while it costs nothing) cannot: there, tsx, a development dependency, registers
// its loader first. `npm start` passes this file to --import.
if (!process.features.typescript) await import('tsx/esm');
