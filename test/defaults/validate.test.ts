/**
 * BEHAVIOUR.md section 3: Glance's 400 for a format outside the lists, word for word. The expected
 * texts were recorded from Glance 25.1.0.
 */
import { formatError, pformat, pyRepr } from '../../lib/defaults/validate';
import { CONTAINER_FORMATS, DISK_FORMATS } from '../../lib/defaults/formats';

const DISK_NOPE =
  "Provided object does not match schema 'image': 'nope' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']\n\n" +
  "Failed validating 'enum' in schema['properties']['disk_format']:\n" +
  "    {'description': 'Format of the disk',\n" +
  "     'enum': [None,\n              'ami',\n              'ari',\n              'aki',\n              'vhd',\n              'vhdx',\n" +
  "              'vmdk',\n              'raw',\n              'qcow2',\n              'vdi',\n              'iso',\n              'ploop'],\n" +
  "     'type': ['null', 'string']}\n\n" +
  "On instance['disk_format']:\n    'nope'";

const CONTAINER_NOPE =
  "Provided object does not match schema 'image': 'nope' is not one of [None, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed']\n\n" +
  "Failed validating 'enum' in schema['properties']['container_format']:\n" +
  "    {'description': 'Format of the container',\n" +
  "     'enum': [None,\n              'ami',\n              'ari',\n              'aki',\n              'bare',\n              'ovf',\n" +
  "              'ova',\n              'docker',\n              'compressed'],\n" +
  "     'type': ['null', 'string']}\n\n" +
  "On instance['container_format']:\n    'nope'";

describe('3. Formats: the 400 for a value outside the lists', () => {
  it('should word a disk_format outside the list as Glance does', () => {
    const err = formatError('disk_format', 'nope', DISK_FORMATS);
    expect(err.status).toBe(400);
    expect(err.type).toBe('image.format');
    expect(err.explanation).toBe(DISK_NOPE);
    expect(err.detail).toBe('');
  });

  it('should word a container_format outside the list as Glance does', () => {
    expect(formatError('container_format', 'nope', CONTAINER_FORMATS).explanation).toBe(CONTAINER_NOPE);
  });

  it('should report the type, not the enum, for a value that is not a string', () => {
    const message = formatError('disk_format', 5, DISK_FORMATS).explanation;
    expect(message.startsWith("Provided object does not match schema 'image': 5 is not of type 'null', 'string'\n\nFailed validating 'type' in")).toBe(true);
    expect(message.endsWith("On instance['disk_format']:\n    5")).toBe(true);
  });

  it('should keep a short list on one line inside the broken dict, as pprint does', () => {
    const message = formatError('disk_format', 'qcow2', ['raw']).explanation;
    expect(message).toBe(
      "Provided object does not match schema 'image': 'qcow2' is not one of [None, 'raw']\n\n" +
        "Failed validating 'enum' in schema['properties']['disk_format']:\n" +
        "    {'description': 'Format of the disk',\n     'enum': [None, 'raw'],\n     'type': ['null', 'string']}\n\n" +
        "On instance['disk_format']:\n    'qcow2'",
    );
  });
});

describe('3. Formats: Python repr and pprint', () => {
  it.each([
    ['nope', "'nope'"],
    ["it's", '"it\'s"'],
    ['say "hi"', `'say "hi"'`],
    [null, 'None'],
    [true, 'True'],
    [5, '5'],
    [['a', null], "['a', None]"],
    [{ b: 1 }, "{'b': 1}"],
  ])('should repr %p as %s', (value, repr) => {
    expect(pyRepr(value)).toBe(repr);
  });

  it('should break a dict that does not fit 72 columns one key a line, keys sorted', () => {
    expect(pformat({ z: 'x'.repeat(40), a: 'y'.repeat(40) })).toBe(`{'a': '${'y'.repeat(40)}',\n 'z': '${'x'.repeat(40)}'}`);
  });
});
