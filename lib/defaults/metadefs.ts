/**
 * The metadef namespace `OS::Compute::Hypervisor`, with `vz` among the `hypervisor_type` values,
 * as plain data (compute-hypervisor.json, loadable into any Glance with
 * `glance-manage db_load_metadefs`), and the documents Glance serves for it. Pure.
 */
import hypervisorNamespace from './compute-hypervisor.json';
import namespaceSchemaDoc from './metadef-namespace-schema.json';
import propertySchemaDoc from './metadef-property-schema.json';

export interface MetadefProperty {
  readonly title?: string;
  readonly description?: string;
  readonly type?: string;
  readonly enum?: readonly string[];
  readonly [key: string]: unknown;
}

export interface MetadefNamespace {
  readonly namespace: string;
  readonly display_name?: string;
  readonly description?: string;
  readonly visibility?: string;
  readonly protected?: boolean;
  readonly resource_type_associations?: readonly { readonly name: string; readonly [key: string]: unknown }[];
  readonly properties?: Readonly<Record<string, MetadefProperty>>;
  readonly objects?: readonly unknown[];
  readonly [key: string]: unknown;
}

/** The shipped `OS::Compute::Hypervisor` namespace. */
export const HYPERVISOR_NAMESPACE: MetadefNamespace = Object.freeze(hypervisorNamespace as MetadefNamespace);

/** The sentence Glance's namespace has for Virtuozzo in the `hypervisor_type` description. */
export const VZ_DESCRIPTION = 'VZ - Virtuozzo OS Containers and Virtual Machines (through libvirt).';

/** `GET /v2/schemas/metadefs/namespace` and `/v2/schemas/metadefs/property`, as Glance 25 serves them. */
export const METADEF_NAMESPACE_SCHEMA: Readonly<Record<string, unknown>> = namespaceSchemaDoc;
export const METADEF_PROPERTY_SCHEMA: Readonly<Record<string, unknown>> = propertySchemaDoc;

/**
 * `wanted`'s values merged into `existing`: existing order kept, no duplicates, each missing value
 * placed right after the value that precedes it in `wanted` (so `vz` lands between `vmware` and
 * `xen`), or first when nothing precedes it.
 */
export function mergeValues<T>(existing: readonly T[], wanted: readonly T[]): T[] {
  const result = [...existing];
  wanted.forEach((value, i) => {
    if (result.includes(value)) return;
    let at = 0;
    for (let j = i - 1; j >= 0; j--) {
      const before = result.indexOf(wanted[j] as T);
      if (before !== -1) {
        at = before + 1;
        break;
      }
    }
    result.splice(at, 0, value);
  });
  return result;
}

/** `property` with the shipped `hypervisor_type` values and the VZ sentence merged in. */
export function withVz(property: MetadefProperty): MetadefProperty {
  const shipped = HYPERVISOR_NAMESPACE.properties?.['hypervisor_type'];
  const values = mergeValues(property.enum ?? [], shipped?.enum ?? []);
  let description = property.description;
  if (typeof description === 'string' && !description.includes('VZ - ')) {
    const marker = ' For more information';
    const at = description.indexOf(marker);
    description = at === -1 ? `${description} ${VZ_DESCRIPTION}` : `${description.slice(0, at)} ${VZ_DESCRIPTION}${description.slice(at)}`;
  }
  return { ...property, ...(description === undefined ? {} : { description }), enum: values };
}

/** Glance's order of a property's fields in its answers: type, title, description, then the rest. */
function propertyView(property: MetadefProperty): Record<string, unknown> {
  const { type, title, description, ...rest } = property;
  return { type, title, description, ...rest };
}

/** `GET /v2/metadefs/namespaces/{ns}/properties`. */
export function propertiesDocument(ns: MetadefNamespace): Record<string, unknown> {
  return { properties: Object.fromEntries(Object.entries(ns.properties ?? {}).map(([name, p]) => [name, propertyView(p)])) };
}

/** `GET /v2/metadefs/namespaces/{ns}/properties/{name}`, or null when there is no such property. */
export function propertyDocument(ns: MetadefNamespace, name: string): Record<string, unknown> | null {
  const property = Object.hasOwn(ns.properties ?? {}, name) ? ns.properties?.[name] : undefined;
  return property ? { name, ...propertyView(property) } : null;
}

/** `GET /v2/metadefs/namespaces/{ns}`, as Glance shows a namespace loaded by an admin at `createdAt`. */
export function namespaceDocument(ns: MetadefNamespace, createdAt: string): Record<string, unknown> {
  return {
    namespace: ns.namespace,
    display_name: ns.display_name,
    description: ns.description,
    visibility: ns.visibility,
    protected: ns.protected,
    owner: 'admin',
    created_at: createdAt,
    resource_type_associations: (ns.resource_type_associations ?? []).map((r) => ({ ...r, created_at: createdAt })),
    ...propertiesDocument(ns),
    self: `/v2/metadefs/namespaces/${ns.namespace}`,
    schema: '/v2/schemas/metadefs/namespace',
  };
}
