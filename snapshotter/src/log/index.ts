export { LOG_LEVELS, createLogger, sharedSilentLogger, silentLogger } from './logger.js';
export type { Logger } from './logger.js';
