export { imageMatches, layerMetricsSamples, layerStatus, startTraceHooks } from './layer-status.js';
export type { LayerStatus, StatusSources } from './layer-status.js';
export { serveStatus, statusSocketPath } from './status-server.js';
