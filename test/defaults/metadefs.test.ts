/** BEHAVIOUR.md section 3: the shipped OS::Compute::Hypervisor namespace and merging vz into another. */
import { HYPERVISOR_NAMESPACE, mergeValues, propertyDocument, VZ_DESCRIPTION, withVz } from '../../lib/defaults/metadefs';

const HYPERVISORS = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen'];

describe('3. Metadefs: the shipped namespace', () => {
  it('should list vz among the hypervisor_type values, with the VZ line in the description', () => {
    const property = HYPERVISOR_NAMESPACE.properties?.['hypervisor_type'];
    expect(property?.enum).toEqual(HYPERVISORS);
    expect(property?.description).toContain(VZ_DESCRIPTION);
  });

  it('should keep vm_mode and the OS::Glance::Image association', () => {
    expect(Object.keys(HYPERVISOR_NAMESPACE.properties ?? {})).toEqual(['hypervisor_type', 'vm_mode']);
    expect(HYPERVISOR_NAMESPACE.resource_type_associations).toEqual([{ name: 'OS::Glance::Image' }]);
  });

  it('should answer the property document in Glance field order', () => {
    const doc = propertyDocument(HYPERVISOR_NAMESPACE, 'hypervisor_type');
    expect(Object.keys(doc ?? {})).toEqual(['name', 'type', 'title', 'description', 'enum']);
    expect(propertyDocument(HYPERVISOR_NAMESPACE, 'nope')).toBeNull();
    expect(propertyDocument(HYPERVISOR_NAMESPACE, 'constructor')).toBeNull();
  });
});

describe('3. Metadefs: merging vz into a namespace without it', () => {
  it.each([
    ['vz between vmware and xen', ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'xen'], HYPERVISORS],
    ['nothing when vz is there', HYPERVISORS, HYPERVISORS],
    ['every value to an empty list', [], HYPERVISORS],
    ["each missing value right after its predecessor, the service's own values kept in their order", ['kvm', 'ironic', 'xen'], ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'ironic', 'xen']],
  ])('should add %s', (_name, existing, merged) => {
    expect(mergeValues(existing, HYPERVISORS)).toEqual(merged);
  });

  it('should add the VZ line before "For more information", once', () => {
    const old = { type: 'string', description: 'Hypervisor type. vmware - VMware® vsphere. For more information, see: x', enum: ['kvm', 'xen'] };
    const merged = withVz(old);
    expect(merged.description).toBe(`Hypervisor type. vmware - VMware® vsphere. ${VZ_DESCRIPTION} For more information, see: x`);
    expect(merged.enum).toEqual(['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen']);
    expect(withVz(merged)).toEqual(merged);
  });
});
