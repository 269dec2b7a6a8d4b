// Piscina's entry: plain JavaScript, so the pool works whether or not the parent process
// runs with a TypeScript loader (node --import tsx, vitest). It registers tsx for this
// worker thread, then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
const mod = await import('./worker.ts');
export default mod.default;
