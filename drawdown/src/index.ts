export { startApp } from './app';
export type { App } from './app';
export { preflight } from './preflight';
