/**
 * Glance's image schemas (`/v2/schemas/image`, `/v2/schemas/images`), as Glance 25 serves them,
 * with the format enums set from the configured lists.
 */
import imageSchemaDoc from './image-schema.json';
import imagesSchemaDoc from './images-schema.json';
import { CONTAINER_FORMATS, DISK_FORMATS } from './formats';

export interface FormatLists {
  readonly diskFormats?: readonly string[];
  readonly containerFormats?: readonly string[];
}

type Schema = Record<string, unknown> & { properties: Record<string, Record<string, unknown>> };

function withFormats(image: Schema, formats: FormatLists): Schema {
  const copy = structuredClone(image);
  const disk = copy.properties['disk_format'];
  const container = copy.properties['container_format'];
  if (disk) disk['enum'] = [null, ...(formats.diskFormats ?? DISK_FORMATS)];
  if (container) container['enum'] = [null, ...(formats.containerFormats ?? CONTAINER_FORMATS)];
  return copy;
}

/** The `image` schema document. */
export function imageSchema(formats: FormatLists = {}): Record<string, unknown> {
  return withFormats(imageSchemaDoc as unknown as Schema, formats);
}

/** The `images` schema document (a list of `image`). */
export function imagesSchema(formats: FormatLists = {}): Record<string, unknown> {
  const doc = structuredClone(imagesSchemaDoc) as unknown as { properties: { images: { items: Schema } } };
  doc.properties.images.items = withFormats(doc.properties.images.items, formats);
  return doc as unknown as Record<string, unknown>;
}
