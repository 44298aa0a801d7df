/**
 * The documents that advertise the defaults, in front of any image service: its image schemas get
 * the configured formats, its `OS::Compute::Hypervisor` namespace gets `vz`; a service without them
 * (404) gets the suite's own. Both rewrite the service's JSON answer through rewriteJsonAnswer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { glanceTimestamp, pythonJson } from '../http/json';
import { readRequest } from '../request/read';
import { rewriteJsonAnswer } from '../http/rewrite';
import { CONTAINER_FORMATS, DISK_FORMATS } from './formats';
import { HYPERVISOR_NAMESPACE, mergeValues, namespaceDocument, propertiesDocument, propertyDocument, withVz, type MetadefProperty } from './metadefs';
import { resolveFormats, type FormatListOption } from './middleware';
import { checkOptions, option, type OptionChecks } from '../options';
import { imageSchema, imagesSchema } from './schemas';

type Next = (err?: unknown) => void;
type Doc = Record<string, unknown>;

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ImageSchemasOptions {
  readonly diskFormats?: FormatListOption;
  readonly containerFormats?: FormatListOption;
}

const SCHEMAS_OPTIONS: OptionChecks<ImageSchemasOptions> = { diskFormats: option.formatList, containerFormats: option.formatList };

/** `[null, ...existing]` with `wanted` merged in (order kept, no duplicates). */
function mergeEnum(property: unknown, wanted: readonly string[]): boolean {
  if (!isObject(property) || !Array.isArray(property['enum'])) return false;
  const existing = property['enum'] as unknown[];
  const merged = mergeValues(existing, [null, ...wanted]);
  if (merged.length === existing.length) return false;
  property['enum'] = merged;
  return true;
}

/** `GET /v2/schemas/image` and `/v2/schemas/images` carry the configured formats. */
export function imageSchemas(options: ImageSchemasOptions = {}) {
  checkOptions('imageSchemas', options, SCHEMAS_OPTIONS);
  const formats = {
    diskFormats: resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats', 'imageSchemas'),
    containerFormats: resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats', 'imageSchemas'),
  };
  const merge = (schema: unknown) => {
    if (!isObject(schema) || !isObject(schema['properties'])) return false;
    const props = schema['properties'];
    const disk = mergeEnum(props['disk_format'], formats.diskFormats);
    const container = mergeEnum(props['container_format'], formats.containerFormats);
    return disk || container;
  };
  return function imageSchemas(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const reading = readRequest(req);
    if ((reading.method === 'GET' || reading.method === 'HEAD') && reading.route === 'schemas' && reading.segments.length === 2) {
      const name = (reading.segments[1] as string).toLowerCase();
      if (name === 'image') {
        rewriteJsonAnswer(req, res, { transform: (doc) => (merge(doc) ? doc : undefined), instead404: () => imageSchema(formats), serialize: (d) => pythonJson(d) });
      } else if (name === 'images') {
        const items = (doc: unknown) => (isObject(doc) && isObject(doc['properties']) && isObject(doc['properties']['images']) ? doc['properties']['images']['items'] : undefined);
        rewriteJsonAnswer(req, res, { transform: (doc) => (merge(items(doc)) ? doc : undefined), instead404: () => imagesSchema(formats), serialize: (d) => pythonJson(d) });
      }
    }
    next();
  };
}

const NS = HYPERVISOR_NAMESPACE.namespace;

/** Merge `vz` into a property document, keeping its fields in place; undefined when nothing changes. */
function vzInto(property: unknown): Doc | undefined {
  if (!isObject(property)) return undefined;
  const merged = withVz(property as MetadefProperty);
  const changed = JSON.stringify(merged) !== JSON.stringify(property);
  return changed ? { ...property, ...merged } : undefined;
}

function vzInProperties(doc: unknown): Doc | undefined {
  if (!isObject(doc) || !isObject(doc['properties'])) return undefined;
  const merged = vzInto(doc['properties']['hypervisor_type']);
  if (!merged) return undefined;
  return { ...doc, properties: { ...doc['properties'], hypervisor_type: merged } };
}

/** The `OS::Compute::Hypervisor` namespace, its properties and `hypervisor_type` show `vz`. It takes no options. */
export function hypervisorMetadefs(options: Readonly<Record<string, never>> = {}) {
  checkOptions('hypervisorMetadefs', options, {});
  return function hypervisorMetadefs(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const reading = readRequest(req);
    // metadefs/namespaces/{ns}[/properties[/{name}]]
    const [, namespaces, ns, properties, name, ...more] = reading.segments;
    const ours = reading.route === 'metadefs' && namespaces?.toLowerCase() === 'namespaces' && ns === NS && more.length === 0;
    if ((reading.method === 'GET' || reading.method === 'HEAD') && ours && (properties === undefined || properties.toLowerCase() === 'properties')) {
      const serialize = (d: unknown) => pythonJson(d, false);
      if (properties === undefined) {
        rewriteJsonAnswer(req, res, { transform: vzInProperties, instead404: () => namespaceDocument(HYPERVISOR_NAMESPACE, glanceTimestamp()), serialize });
      } else if (name === undefined) {
        rewriteJsonAnswer(req, res, { transform: vzInProperties, instead404: () => propertiesDocument(HYPERVISOR_NAMESPACE), serialize });
      } else if (name === 'hypervisor_type') {
        rewriteJsonAnswer(req, res, { transform: vzInto, instead404: () => propertyDocument(HYPERVISOR_NAMESPACE, 'hypervisor_type'), serialize });
      }
    }
    next();
  };
}
