export { glanceError, glanceErrorHandler, isGlanceError, negotiateErrorForm, renderGlanceError, sendGlanceError, toGlanceError } from './errors';
export type { GlanceError, GlanceErrorOptions } from './errors';
export { edgeData, inspectBody } from './http/body';
export type { EdgeRequest, GlanceEdgeRequestData } from './http/body';
export { factsFromGlanceImage, httpImageLookup, IMAGE_STATUSES, lookupHeaders } from './images/lookup';
export { IMAGE_ROUTES, readRequest, readTarget } from './request/read';
export type { RequestReading, Route } from './request/read';
export type { HttpImageLookupOptions, ImageFacts, ImageLookup, ImageStatus } from './images/lookup';
export { MemoryStore } from './locations/store';
export type { Lease, LeaseKind, Store } from './locations/store';
export { decideLocationPatch, locationPosition } from './locations/decide';
export type { LocationConflict, LocationImage, LocationPolicy } from './locations/decide';
export { locationGuard } from './locations/guard';
export type { LocationGuardOptions, LocationRefusal } from './locations/guard';
export { ACCEPT_PATCH, locationOps, parseImagePatch, PATCH_MEDIA_TYPES } from './locations/patch';
export type { PatchOp, PatchOpName } from './locations/patch';
export { CONTAINER_FORMATS, DISK_FORMATS } from './defaults/formats';
export { imageSchema, imagesSchema } from './defaults/schemas';
export type { FormatLists } from './defaults/schemas';
export { createDemoApp } from './demo/app';
export type { DemoOptions } from './demo/app';
export { DiskImageStore } from './demo/store';
export type { ImageLocation, ImageRecord } from './demo/store';
export { decideRange, legacyToRange, parseByteRanges, tooManyRanges, unsatisfiable } from './ranges/decide';
export type { ByteRange, ParsedRanges, RangeDecision, RangeRequest } from './ranges/decide';
export { DEFAULT_DEPRECATION_LINK, legacyContentRange } from './ranges/legacy';
export type { DeprecationOptions, LegacyUse } from './ranges/legacy';
export { serveImage } from './ranges/serve';
export type { ImageData, OpenedData, ServeImageOptions } from './ranges/serve';
export { FileCache } from './ranges/file';
export { imageFormats, resolveFormats } from './defaults/middleware';
export type { FormatListOption, ImageFormatsOptions } from './defaults/middleware';
export {
  HYPERVISOR_NAMESPACE,
  mergeValues,
  METADEF_NAMESPACE_SCHEMA,
  METADEF_PROPERTY_SCHEMA,
  namespaceDocument,
  propertiesDocument,
  propertyDocument,
  VZ_DESCRIPTION,
  withVz,
} from './defaults/metadefs';
export type { MetadefNamespace, MetadefProperty } from './defaults/metadefs';
export { formatAllowed, formatError, pformat } from './defaults/validate';
export type { FormatField } from './defaults/validate';
export { hypervisorMetadefs, imageSchemas } from './defaults/documents';
export type { ImageSchemasOptions } from './defaults/documents';
export { rewriteJsonAnswer } from './http/rewrite';
export { reclaimStreamedData } from './http/reclaim';
export type { ReclaimOptions } from './http/reclaim';
export type { JsonRewrite } from './http/rewrite';
export { createSidecarApp, createSidecarHandler, untouchedBySuite } from './sidecar/app';
export type { SidecarOptions } from './sidecar/app';
export { endToEnd, forward } from './sidecar/forward';
export type { ForwardOptions } from './sidecar/forward';
export { both, clientName, createMetrics, metricsEndpoint, routeGroup } from './observe/metrics';
export type { EdgeMetrics, MetricsOptions, RouteGroup } from './observe/metrics';
export { accessLog, createLogger, lineBuffer, logLegacyRange, logRefusal, requestId, requestIdOf } from './observe/logs';
export type { AccessLogOptions, Logger, LoggerOptions } from './observe/logs';
