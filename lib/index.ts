/**
 * glance-edge: the middlewares and their pure decisions. Loading it loads none of the servers'
 * dependencies (Express, pino, prom-client); the sidecar, the demo, metrics and logs are in
 * `glance-edge/server`.
 */
export { glanceError, glanceErrorHandler, isGlanceError, sendGlanceError } from './errors';
export type { GlanceError, GlanceErrorOptions } from './errors';
export type { EdgeRequest, GlanceEdgeRequestData } from './http/body';
export { httpImageLookup } from './images/lookup';
export type { HttpImageLookupOptions, ImageFacts, ImageLookup, ImageStatus } from './images/lookup';
export { readRequest } from './request/read';
export type { RequestReading, Route } from './request/read';
export { MemoryStore } from './locations/store';
export type { Lease, LeaseKind, Store } from './locations/store';
export { decideLocationPatch } from './locations/decide';
export type { LocationConflict, LocationImage, LocationPolicy } from './locations/decide';
export { locationGuard } from './locations/guard';
export type { LocationGuardOptions, LocationRefusal } from './locations/guard';
export { parseImagePatch } from './locations/patch';
export type { PatchOp, PatchOpName } from './locations/patch';
export { CONTAINER_FORMATS, DISK_FORMATS } from './defaults/formats';
export type { FormatLists } from './defaults/schemas';
export { decideRange } from './ranges/decide';
export type { ByteRange, ParsedRanges, RangeDecision, RangeRequest } from './ranges/decide';
export { legacyContentRange } from './ranges/legacy';
export type { DeprecationOptions, LegacyUse } from './ranges/legacy';
export { serveImage } from './ranges/serve';
export type { ImageData, OpenedData, ServeImageOptions } from './ranges/serve';
export { FileCache } from './ranges/file';
export { imageFormats } from './defaults/middleware';
export type { FormatListOption, ImageFormatsOptions } from './defaults/middleware';
export { HYPERVISOR_NAMESPACE } from './defaults/metadefs';
export type { MetadefNamespace, MetadefProperty } from './defaults/metadefs';
export { hypervisorMetadefs, imageSchemas } from './defaults/documents';
export type { ImageSchemasOptions } from './defaults/documents';
