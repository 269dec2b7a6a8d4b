// The edge thread's entry: plain JavaScript, so the thread starts whether or not the parent
// runs with a TypeScript loader (node --import tsx, vitest). It registers tsx for this thread,
// then loads the TypeScript thread (as rater/src/pricing/worker-entry.mjs does).
import { register } from 'tsx/esm/api';

register();
await import('./edge-worker.ts');
