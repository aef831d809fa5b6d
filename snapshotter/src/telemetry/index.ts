export {
  ATTR_HOST_NAME,
  ATTR_RPC_SYSTEM,
  ATTR_RPC_SERVICE,
  ATTR_RPC_METHOD,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_HTTP_RESPONSE_BODY_SIZE,
  ATTR_CLIP_SOURCE,
  ATTR_CLIP_LAYER_DIGEST,
  ATTR_CLIP_LAYER_DIFF_ID,
  ATTR_CLIP_LAYER_SIZE,
  ATTR_CLIP_READ_OFFSET,
  ATTR_CLIP_READ_LENGTH,
  ATTR_CLIP_READ_BYTES,
  ATTR_CLIP_CACHE_HIT,
  ATTR_CLIP_UNSAMPLED_READS,
  ATTR_CLIP_UNSAMPLED_BYTES,
  ATTR_CLIP_DOWNLOAD_JOINED,
  ATTR_CLIP_DOWNLOAD_ATTEMPT,
  ATTR_CLIP_COMPRESSION,
  ATTR_CLIP_BYTES,
  ATTR_CLIP_BLOB_DIGEST,
  ATTR_CLIP_CONTENT_CACHE_BACKEND,
  ATTR_CLIP_PUBLISH_RESULT,
  ATTR_CLIP_INDEX_SOURCE,
  ATTR_CLIP_SNAPSHOT_KEY,
  ATTR_CLIP_ERROR_CODE,
  SPAN_READ,
  SPAN_READ_DISK,
  SPAN_READ_CONTENT_CACHE,
  SPAN_READ_REGISTRY,
  SPAN_DISK_VERIFY,
  SPAN_LAYER_DOWNLOAD,
  SPAN_LAYER_DECOMPRESS,
  SPAN_LAYER_VERIFY,
  SPAN_REGISTRY_FETCH_BLOB,
  SPAN_CONTENT_CACHE_PUBLISH,
  SPAN_PREFETCH,
  SPAN_LAYER_PREPARE,
  SPAN_INDEX_RESOLVE,
  SPAN_FUSE_MOUNT,
  METRIC_READS,
  METRIC_READ_BYTES,
  METRIC_READ_ERRORS,
  METRIC_READ_DURATION,
  METRIC_REGISTRY_FETCHES,
  METRIC_REGISTRY_FETCH_BYTES,
  METRIC_CC_PUBLISHES,
  METRIC_CC_PUBLISH_FAILURES,
  METRIC_LAZY_FALLBACKS,
  METRIC_MOUNTED_LAYERS,
  METRIC_FUSE_ERRORS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
} from './attributes.js';
export { BlobFetchObserver, redactUrl } from './blob-fetch-span.js';
export { DiskSpanSampler } from './disk-span-sampler.js';
export type { SkippedDiskReads } from './disk-span-sampler.js';
export {
  addMountedLayers,
  installMeterProvider,
  recordFallback,
  recordFuseError,
  recordPublish,
  recordRead,
  recordReadError,
  recordRegistryFetch,
  setMountedLayers,
} from './metrics.js';
export type { ReadTier } from './metrics.js';
export { observeContentCache } from './observed-content-cache.js';
export { createSpanExporter, exporterUrl } from './otlp-exporter.js';
export type { OtlpProtocol } from './otlp-exporter.js';
export { traceRpc } from './rpc-span.js';
export type { RpcCarrier } from './rpc-span.js';
export { startTelemetry } from './telemetry.js';
export type { Telemetry, TelemetryConfig } from './telemetry.js';
export { activeRecordingSpan, recordSpanError, setTracingEnabled, tracer, tracingEnabled, withSpan } from './tracing.js';
export type { SpanOptions } from './tracing.js';
