/** Glance's default `disk_formats` since Ocata: `ploop` joined the list. */
export const DISK_FORMATS: readonly string[] = Object.freeze(['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']);

/** Glance's default `container_formats`. */
export const CONTAINER_FORMATS: readonly string[] = Object.freeze(['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed']);
