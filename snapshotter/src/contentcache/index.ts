export { NoContentCache } from './content-cache.js';
export type { ContentCache } from './content-cache.js';
