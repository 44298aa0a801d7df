/**
 * BEHAVIOUR.md §1: image PATCH bodies in Glance's two patch media types, parsed and refused with
 * Glance's texts (glance/api/v2/images.py RequestDeserializer.update).
 *
 * PATCH_PROPERTY_SEED  fast-check seed of the property (default: test/helpers/seed.ts; printed)
 */
import fc from 'fast-check';
import { isGlanceError, type GlanceError } from '../../lib/errors';
import { ACCEPT_PATCH, locationOps, parseImagePatch, PATCH_MEDIA_TYPES, type PatchOp } from '../../lib/locations/patch';
import { testSeed } from '../helpers/seed';

const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';
const MEDIA_TYPES = [V21, V20] as const;
type MediaType = (typeof MEDIA_TYPES)[number];

const OPS = 'It must be one of the following: add, remove, replace.';
const EXACTLY_ONE = 'Operation objects must contain exactly one member named "add", "remove", or "replace".';
const ONLY_ONE = 'Operation objects must contain only one member named "add", "remove", or "replace".';

/** The error parseImagePatch throws for `body`, or a failure if it does not throw one of ours. */
function refusal(body: string | Buffer, type: MediaType): GlanceError {
  try {
    parseImagePatch(typeof body === 'string' ? Buffer.from(body, 'utf8') : body, type);
  } catch (err) {
    if (isGlanceError(err)) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(body.toString())} to be refused`);
}

function parse(body: string, type: MediaType): PatchOp[] {
  return parseImagePatch(Buffer.from(body, 'utf8'), type);
}

/** The same change written in both drafts. */
function change(op: string, path: string, value?: unknown): Record<MediaType, string> {
  const hasValue = value !== undefined;
  return {
    [V21]: JSON.stringify(hasValue ? { op, path, value } : { op, path }),
    [V20]: JSON.stringify(hasValue ? { [op]: path, value } : { [op]: path }),
  };
}

const LOCATION = { url: 'http://example.com/image.qcow2', metadata: {} };

describe('1. Location changes: PATCH /v2/images/{id}', () => {
  describe('media types', () => {
    it('should know exactly the two media types of Glance, with their drafts', () => {
      expect(PATCH_MEDIA_TYPES).toEqual({ [V20]: 4, [V21]: 10 });
      expect(ACCEPT_PATCH).toBe('application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch');
    });

    it('should refuse to parse a body of another media type with a TypeError', () => {
      expect(() => parseImagePatch(Buffer.from('[]'), 'application/json')).toThrow(TypeError);
      expect(() => parseImagePatch(Buffer.from('[]'), 'application/json-patch+json')).toThrow(TypeError);
    });
  });

  describe.each(MEDIA_TYPES)('malformed bodies in %s', (type) => {
    const draft4 = type === V20;
    const cases: [string, string, string][] = [
      ['an empty body', '', 'Body expected in request.'],
      ['malformed JSON', '[{"op": "remove", ', 'Malformed JSON in request body.'],
      ['a trailing comma', '[{"op": "remove", "path": "/locations/0"},]', 'Malformed JSON in request body.'],
      ['a JSON object', change('remove', '/locations/0')[type], 'Request body must be a JSON array of operation objects.'],
      // Glance's JSONRequestDeserializer.from_json refuses any top-level value but a list or a dict.
      ['a JSON string', '"remove"', 'Unexpected body type. Expected list/dict.'],
      ['JSON null', 'null', 'Unexpected body type. Expected list/dict.'],
      ['a number', '42', 'Unexpected body type. Expected list/dict.'],
      ['an array of strings', '["remove"]', 'Operations must be JSON objects.'],
      ['an array holding null', '[null]', 'Operations must be JSON objects.'],
      ['an array holding an array', '[[]]', 'Operations must be JSON objects.'],
      ['a valid op followed by a number', `[${change('remove', '/locations/0')[type]}, 1]`, 'Operations must be JSON objects.'],
      ['add without a value', `[${change('add', '/locations/-')[type]}]`, 'Operation "add" requires a member named "value".'],
      ['replace without a value', `[${change('replace', '/locations')[type]}]`, 'Operation "replace" requires a member named "value".'],
      ['remove /locations', `[${change('remove', '/locations')[type]}]`, "Invalid JSON pointer for this resource: '/locations'"],
      ['add /locations', `[${change('add', '/locations', [LOCATION])[type]}]`, "Invalid JSON pointer for this resource: '/locations'"],
      ['replace /locations/0', `[${change('replace', '/locations/0', LOCATION)[type]}]`, "Invalid JSON pointer for this resource: '/locations/0'"],
      ['remove /locations/0/url', `[${change('remove', '/locations/0/url')[type]}]`, "Invalid JSON pointer for this resource: '/locations/0/url'"],
      ['replace /name/x', `[${change('replace', '/name/x', 'n')[type]}]`, "Invalid JSON pointer for this resource: '/name/x'"],
      ['a pointer without a leading slash', `[${change('remove', 'locations/0')[type]}]`, 'Pointer `locations/0` does not start with "/".'],
      ['a pointer with adjacent slashes', `[${change('remove', '/locations//0')[type]}]`, 'Pointer `/locations//0` contains adjacent "/".'],
      ['a pointer ending with a slash', `[${change('remove', '/locations/0/')[type]}]`, 'Pointer `/locations/0/` end with "/".'],
      ['a pointer of two slashes', `[${change('remove', '//')[type]}]`, 'Pointer `//` end with "/".'],
      ['a pointer with a bad escape', `[${change('remove', '/a~2b')[type]}]`, 'Pointer `/a~2b` contains "~" not part of a recognized escape sequence.'],
      ['a pointer ending with ~', `[${change('remove', '/a~')[type]}]`, 'Pointer `/a~` contains "~" not part of a recognized escape sequence.'],
      [
        'a bad op after a good one',
        `[${change('remove', '/locations/0')[type]}, ${change('replace', '/locations/0', LOCATION)[type]}]`,
        "Invalid JSON pointer for this resource: '/locations/0'",
      ],
    ];
    const draftCases: [string, string, string][] = draft4
      ? [
          ['an op object without an operation member', '[{"path": "/locations/0"}]', EXACTLY_ONE],
          ['an unknown operation', '[{"move": "/locations/0"}]', EXACTLY_ONE],
          ['the v2.1 syntax', '[{"op": "remove", "path": "/locations/0"}]', EXACTLY_ONE],
          ['two operation members', '[{"remove": "/locations/0", "add": "/x"}]', ONLY_ONE],
          ['three operation members', '[{"replace": "/a", "add": "/b", "remove": "/c", "value": 1}]', ONLY_ONE],
        ]
      : [
          ['an op object without op', '[{"path": "/locations/0"}]', `Unable to find \`op\` in JSON Schema change. ${OPS}`],
          ['op null', '[{"op": null, "path": "/locations/0"}]', `Unable to find \`op\` in JSON Schema change. ${OPS}`],
          ['an op object without path', '[{"op": "remove"}]', "Unable to find 'path' in JSON Schema change"],
          ['op move', '[{"op": "move", "from": "/locations/0", "path": "/locations/1"}]', `Invalid operation: \`move\`. ${OPS}`],
          ['op in capitals', '[{"op": "REMOVE", "path": "/locations/0"}]', `Invalid operation: \`REMOVE\`. ${OPS}`],
          ['op a number', '[{"op": 5, "path": "/locations/0"}]', `Invalid operation: \`5\`. ${OPS}`],
          ['op true', '[{"op": true, "path": "/locations/0"}]', `Invalid operation: \`True\`. ${OPS}`],
          ['the v2.0 syntax', '[{"remove": "/locations/0"}]', `Unable to find \`op\` in JSON Schema change. ${OPS}`],
        ];

    it.each([...cases, ...draftCases])('should 400 for %s', (_name, body, message) => {
      const err = refusal(body, type);
      expect(err.status).toBe(400);
      expect(err.type).toBe('patch.invalid');
      expect(err.message).toBe(message);
      expect(err.explanation).toBe(message);
      expect(err.detail).toBe('');
    });
  });

  describe.each(MEDIA_TYPES)('read-only and reserved attributes in %s', (type) => {
    it.each([
      ['replace', '/status', 'active', "Attribute 'status' is read-only."],
      ['replace', '/checksum', 'abc', "Attribute 'checksum' is read-only."],
      ['add', '/size', 1, "Attribute 'size' is read-only."],
      ['replace', '/id', 'x', "Attribute 'id' is read-only."],
      ['remove', '/created_at', undefined, "Attribute 'created_at' is read-only."],
      ['replace', '/os_hash_value', 'x', "Attribute 'os_hash_value' is read-only."],
      ['add', '/location', 'http://x', "Attribute 'location' is reserved."],
      ['remove', '/deleted', undefined, "Attribute 'deleted' is reserved."],
      ['replace', '/deleted_at', 'x', "Attribute 'deleted_at' is reserved."],
    ])('should 403 for %s %s', (op, path, value, message) => {
      const err = refusal(`[${change(op, path, value)[type]}]`, type);
      expect(err.status).toBe(403);
      expect(err.type).toMatch(/^patch\.(read_only|reserved)$/);
      expect(err.message).toBe(message);
    });

    it('should 403 for an attribute in the reserved namespace os_glance_', () => {
      // Glance: _validate_change refuses any root starting with common.GLANCE_RESERVED_NS ('os_glance').
      const err = refusal(`[${change('add', '/os_glance_import_task', 'x')[type]}]`, type);
      expect(err.status).toBe(403);
      expect(err.message).toBe("Attribute 'os_glance_import_task' is reserved.");
    });

    it('should 400 (not 403) for replace /status without a value, as Glance checks the value first', () => {
      // Glance's update(): _validate_path, then _get_change_value, then _validate_change (read-only).
      const err = refusal(`[${change('replace', '/status')[type]}]`, type);
      expect(err.status).toBe(400);
      expect(err.message).toBe('Operation "replace" requires a member named "value".');
    });
  });

  describe.each(MEDIA_TYPES)('valid patches in %s', (type) => {
    it('should accept [] as a valid no-op', () => {
      expect(parse('[]', type)).toEqual([]);
      expect(parse(' [ ] \n', type)).toEqual([]);
    });

    it('should parse location ops of both drafts to the same ops', () => {
      const body = `[${change('remove', '/locations/0')[type]}, ${change('add', '/locations/-', LOCATION)[type]}, ${
        change('replace', '/locations', [LOCATION])[type]
      }, ${change('add', '/locations/1', LOCATION)[type]}, ${change('remove', '/locations/-')[type]}]`;
      expect(parse(body, type)).toEqual([
        { op: 'remove', path: ['locations', '0'] },
        { op: 'add', path: ['locations', '-'], value: LOCATION },
        { op: 'replace', path: ['locations'], value: [LOCATION] },
        { op: 'add', path: ['locations', '1'], value: LOCATION },
        { op: 'remove', path: ['locations', '-'] },
      ]);
    });

    it('should keep positions the decision judges (-1, x) for the decision', () => {
      expect(parse(`[${change('remove', '/locations/-1')[type]}]`, type)).toEqual([{ op: 'remove', path: ['locations', '-1'] }]);
      expect(parse(`[${change('add', '/locations/x', LOCATION)[type]}]`, type)).toEqual([{ op: 'add', path: ['locations', 'x'], value: LOCATION }]);
    });

    it('should keep falsy values, which the decision judges', () => {
      expect(parse(`[${change('replace', '/locations', [])[type]}]`, type)).toEqual([{ op: 'replace', path: ['locations'], value: [] }]);
      expect(parse(`[${JSON.stringify(type === V21 ? { op: 'replace', path: '/locations', value: null } : { replace: '/locations', value: null })}]`, type)).toEqual([
        { op: 'replace', path: ['locations'], value: null },
      ]);
    });

    it.each([
      ['/a~1b', ['a/b']],
      ['/a~0b', ['a~b']],
      ['/~01', ['~1']],
      ['/~10', ['/0']],
      ['/x~0~1y', ['x~/y']],
    ])('should decode the pointer %s', (pointer, path) => {
      expect(parse(`[${change('add', pointer, 'v')[type]}]`, type)).toEqual([{ op: 'add', path, value: 'v' }]);
    });

    it('should strip blanks around pointer tokens, as Glance does', () => {
      // Glance's _decode_json_pointer: part.replace('~1', '/').replace('~0', '~').strip()
      expect(parse(`[${change('remove', '/locations/ 0 ')[type]}]`, type)).toEqual([{ op: 'remove', path: ['locations', '0'] }]);
      expect(parse(`[${change('add', '/ name', 'n')[type]}]`, type)).toEqual([{ op: 'add', path: ['name'], value: 'n' }]);
    });

    it('should pick out the ops that touch /locations', () => {
      const ops = parse(
        `[${change('replace', '/name', 'x')[type]}, ${change('remove', '/locations/0')[type]}, ${change('add', '/tags', ['a'])[type]}]`,
        type,
      );
      expect(locationOps(ops)).toEqual([{ op: 'remove', path: ['locations', '0'] }]);
      expect(locationOps(parse(`[${change('replace', '/name', 'x')[type]}]`, type))).toEqual([]);
    });
  });

  describe('the v2.0 draft', () => {
    it('should read the pointer from the member named after the operation', () => {
      expect(parse('[{"remove": "/locations/0"}, {"add": "/locations/-", "value": {"url": "u", "metadata": {}}}, {"replace": "/locations", "value": []}]', V20)).toEqual([
        { op: 'remove', path: ['locations', '0'] },
        { op: 'add', path: ['locations', '-'], value: { url: 'u', metadata: {} } },
        { op: 'replace', path: ['locations'], value: [] },
      ]);
    });

    it('should 403 when the v2.0 op names a read-only attribute', () => {
      const err = refusal('[{"replace": "/status", "value": "active"}]', V20);
      expect(err.status).toBe(403);
      expect(err.message).toBe("Attribute 'status' is read-only.");
    });
  });

  describe('any body', () => {
    /** A change-like object, so that the generator reaches past the array and object checks. */
    const op = fc.constantFrom('add', 'remove', 'replace', 'move', 'REMOVE', '');
    const pointer = fc.oneof(
      fc.constantFrom('/locations', '/locations/0', '/locations/-', '/locations/-1', '/locations/x', '/status', '/name', '/a~1b', '/a~2', '//', '/', ''),
      fc.string(),
    );
    const changeLike = fc.oneof(
      fc.record({ op: fc.oneof(op, fc.jsonValue()), path: fc.oneof(pointer, fc.jsonValue()), value: fc.jsonValue() }, { requiredKeys: [] }),
      fc.record(
        { add: fc.oneof(pointer, fc.jsonValue()), remove: fc.oneof(pointer, fc.jsonValue()), replace: fc.oneof(pointer, fc.jsonValue()), value: fc.jsonValue() },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.string(), fc.jsonValue()),
    );
    const body = fc.oneof(
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '', 'utf8')),
      fc.array(fc.oneof(changeLike, fc.jsonValue())).map((v) => Buffer.from(JSON.stringify(v), 'utf8')),
      fc.string().map((s) => Buffer.from(s, 'utf8')),
      fc.uint8Array().map((a) => Buffer.from(a)),
    );

    it('should never throw anything but a 400 or 403 GlanceError (a 400 also where Glance fails reading with a 500)', () => {
      fc.assert(
        fc.property(body, fc.constantFrom(...MEDIA_TYPES), (bytes, type) => {
          try {
            const ops = parseImagePatch(bytes, type);
            expect(Array.isArray(ops)).toBe(true);
          } catch (err) {
            expect(isGlanceError(err)).toBe(true);
            expect([400, 403]).toContain((err as GlanceError).status);
          }
        }),
        { numRuns: 2000, seed: testSeed('PATCH_PROPERTY_SEED') },
      );
    });
  });
});
