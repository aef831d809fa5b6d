export { DEFAULT_CONFIG_PATH, defaultConfig, isConfigError, loadConfig, parseConfig } from './config.js';
export type { Config } from './config.js';
export { SCHEMA } from './schema.js';
export type { FieldSpec, FieldType, SectionSpec } from './schema.js';
