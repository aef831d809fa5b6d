export { imageMatches, layerMetricsSamples, layerStatus, startTraceHooks } from './layer-status.js';
export type { LayerStatus, StatusSources } from './layer-status.js';
export { serveStatus } from './status-server.js';
export { statusSocketPath } from './socket-path.js';
