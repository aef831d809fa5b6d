/**
 * Span names, attribute keys and metric names: named once here so dashboards, tests and the README
 * agree. The OpenTelemetry semantic-convention names we use are written out (stable ones and the
 * few incubating ones): importing them from @opentelemetry/semantic-conventions loads all of its
 * thousands of names, ≈ 4 MB of resident memory in every process (README "Daemon memory"); a unit
 * test checks the stable ones against the package.
 */
// Stable semantic conventions.
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_SERVICE_NAME = 'service.name';
export const ATTR_SERVICE_VERSION = 'service.version';
export const ATTR_URL_FULL = 'url.full';

// Incubating semantic conventions (copied).
export const ATTR_HOST_NAME = 'host.name';
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
export const ATTR_HTTP_RESPONSE_BODY_SIZE = 'http.response.body.size';

// Our own attributes.
/** `disk` | `content_cache` | `registry`: which tier a span is about. */
export const ATTR_CLIP_SOURCE = 'clip.source';
export const ATTR_CLIP_LAYER_DIGEST = 'clip.layer.digest';
export const ATTR_CLIP_LAYER_DIFF_ID = 'clip.layer.diff_id';
export const ATTR_CLIP_LAYER_SIZE = 'clip.layer.size';
export const ATTR_CLIP_READ_OFFSET = 'clip.read.offset';
export const ATTR_CLIP_READ_LENGTH = 'clip.read.length';
export const ATTR_CLIP_READ_BYTES = 'clip.read.bytes';
export const ATTR_CLIP_CACHE_HIT = 'clip.cache.hit';
/** Disk-hit reads served without a span since the previous spanned disk hit of the layer. */
export const ATTR_CLIP_UNSAMPLED_READS = 'clip.read.unsampled_disk_reads';
export const ATTR_CLIP_UNSAMPLED_BYTES = 'clip.read.unsampled_disk_bytes';
/** The registry-tier read joined a download another read had started. */
export const ATTR_CLIP_DOWNLOAD_JOINED = 'clip.download.joined';
export const ATTR_CLIP_DOWNLOAD_ATTEMPT = 'clip.download.attempt';
export const ATTR_CLIP_COMPRESSION = 'clip.compression';
/** Uncompressed bytes produced (decompression) or checked (verification). */
export const ATTR_CLIP_BYTES = 'clip.bytes';
/** Compressed bytes received from the registry by the span (a download, an index build, a completion). */
export const ATTR_CLIP_BYTES_COMPRESSED = 'clip.bytes.compressed';
export const ATTR_CLIP_BLOB_DIGEST = 'clip.blob.digest';
export const ATTR_CLIP_CONTENT_CACHE_BACKEND = 'clip.content_cache.backend';
/** `stored` | `skipped` (the backend already had it, or another node is publishing it). */
export const ATTR_CLIP_PUBLISH_RESULT = 'clip.content_cache.publish.result';
/** Where a layer's clip index came from (`content_cache`, `registry`, `built`, …): set by the lead. */
export const ATTR_CLIP_INDEX_SOURCE = 'clip.index.source';
export const ATTR_CLIP_SNAPSHOT_KEY = 'clip.snapshot.key';
/** The image a start trace, a layer summary or a per-layer metric is about. */
export const ATTR_CLIP_IMAGE_REF = 'clip.image.ref';
/** `lazy` | `whole` | `local` | `unread`: how a layer was served (storage/layer-ledger.ts). */
export const ATTR_CLIP_LAYER_MODE = 'clip.layer.mode';
/** Prefix of the per-way fetched byte counts: `clip.fetched.<on_demand|prefetch|background|whole|index_build|content_cache>`. */
export const ATTR_CLIP_FETCHED_PREFIX = 'clip.fetched.';
/** Prefix of the per-tier served byte counts: `clip.served.<disk|content_cache|registry>`. */
export const ATTR_CLIP_SERVED_PREFIX = 'clip.served.';
/** Milliseconds from the start trace's first RPC (or the layer's mount) to the first read. */
export const ATTR_CLIP_TIME_TO_FIRST_READ_MS = 'clip.time_to_first_read_ms';
/** Prefix of an image's layer counts by mode: `clip.image.layers.<lazy|whole|local|unread>`. */
export const ATTR_CLIP_IMAGE_LAYERS_PREFIX = 'clip.image.layers.';
export const ATTR_CLIP_ERROR_CODE = 'clip.error.code';

/** Span names. */
export const SPAN_READ = 'clip.read';
export const SPAN_READ_DISK = 'clip.read.disk';
export const SPAN_READ_CONTENT_CACHE = 'clip.read.content_cache';
export const SPAN_READ_REGISTRY = 'clip.read.registry';
export const SPAN_DISK_VERIFY = 'clip.disk.verify';
export const SPAN_LAYER_DOWNLOAD = 'clip.layer.download';
export const SPAN_LAYER_DECOMPRESS = 'clip.layer.decompress';
export const SPAN_LAYER_VERIFY = 'clip.layer.verify';
export const SPAN_REGISTRY_FETCH_BLOB = 'clip.registry.fetch_blob';
export const SPAN_CONTENT_CACHE_PUBLISH = 'clip.content_cache.publish';
/** Fetching a mounted layer's start profile ahead of the container's reads. */
export const SPAN_PREFETCH = 'clip.prefetch';
/** Suggested names for the lead's layer-preparation spans (`withSpan`). */
export const SPAN_LAYER_PREPARE = 'clip.layer.prepare';
export const SPAN_INDEX_RESOLVE = 'clip.index.resolve';
export const SPAN_FUSE_MOUNT = 'clip.fuse.mount';
/** Downloading a layer whole to build its clip index (no index anywhere). */
export const SPAN_INDEX_BUILD = 'clip.index.build';
/** Background completion of a range-read layer (root, linked to nothing: it runs on its own). */
export const SPAN_LAYER_COMPLETE = 'clip.layer.complete';
/** The root of a start trace: an image's Prepare RPCs, mounts and first reads (telemetry/start-traces.ts). */
export const SPAN_START = 'clip.start';
/** One per layer at the end of a start trace: how the layer was served during it. */
export const SPAN_LAYER_SUMMARY = 'clip.layer.summary';

/** Metric instrument names, Prometheus-shaped (the exporter appends `_total` to counters). */
export const METRIC_READS = 'clip_reads';
export const METRIC_READ_BYTES = 'clip_read_bytes';
export const METRIC_READ_ERRORS = 'clip_read_errors';
export const METRIC_READ_DURATION = 'clip_read_duration_seconds';
export const METRIC_SPLICED_READS = 'clip_spliced_reads';
export const METRIC_REGISTRY_FETCHES = 'clip_registry_fetches';
export const METRIC_REGISTRY_FETCH_BYTES = 'clip_registry_fetch_bytes';
export const METRIC_CC_PUBLISHES = 'clip_content_cache_publishes';
export const METRIC_CC_PUBLISH_FAILURES = 'clip_content_cache_publish_failures';
export const METRIC_LAZY_FALLBACKS = 'clip_lazy_fallbacks';
export const METRIC_MOUNTED_LAYERS = 'clip_mounted_layers';
export const METRIC_FUSE_ERRORS = 'clip_fuse_errors';
export const METRIC_VERIFICATION_FAILURES = 'clip_verification_failures';
export const METRIC_REGISTRY_AUTH_FAILURES = 'clip_registry_auth_failures';
export const METRIC_EVENT_LOOP_DELAY = 'clip_event_loop_delay_seconds';
export const METRIC_BACKGROUND_WAITS = 'clip_background_waits';
export const METRIC_BACKGROUND_WAIT_SECONDS = 'clip_background_wait_seconds';
/** Per image and layer (observed from the layer ledger at scrape time). */
export const METRIC_LAYER_FETCHED_BYTES = 'clip_layer_fetched_bytes';
export const METRIC_LAYER_SERVED_BYTES = 'clip_layer_served_bytes';
export const METRIC_LAYER_LAZY = 'clip_layer_lazy';
export const METRIC_LAYER_FIRST_READ = 'clip_layer_time_to_first_read_seconds';
