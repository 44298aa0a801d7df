/**
 * BEHAVIOUR.md §2, "Range" and "The legacy request form", as a table against the pure decision for
 * the 32-byte fixture: every row of the contract, plus the answers recorded from the real Glance
 * 25.1.0 that the contract is read against (marked Glance), and our deliberate differences (ours).
 * Each row asserts the whole decision: the kind, the ranges, and for an error its status, `type`,
 * both of webob's sentences and the headers that ride on it.
 */
import { decideRange, parseByteRanges, tooManyRanges, type RangeDecision, type RangeRequest } from '../../lib/ranges/decide';

const SIZE = 32;
const ETAG = '"aa4bc671b4c1c7a38e29800f50ef6346"';

/** A decision reduced to what a client can observe. */
type Outcome =
  | { kind: 'whole' }
  | { kind: 'partial'; ranges: { start: number; end: number }[] }
  | { kind: 'error'; status: number; type: string; message: string; explanation: string; detail: string; headers: Record<string, string> | null };

function outcome(decision: RangeDecision): Outcome {
  if (decision.kind === 'whole') return { kind: 'whole' };
  if (decision.kind === 'partial') return { kind: 'partial', ranges: decision.ranges.map(({ start, end }) => ({ start, end })) };
  const e = decision.error;
  return { kind: 'error', status: e.status, type: e.type, message: e.message, explanation: e.explanation, detail: e.detail, headers: e.headers ?? null };
}

const WHOLE: Outcome = { kind: 'whole' };
const slice = (...pairs: [number, number][]): Outcome => ({ kind: 'partial', ranges: pairs.map(([start, end]) => ({ start, end })) });

/** A 416 as webob words it (its stock sentence first) with `Content-Range: bytes *\/32`. */
const refused = (message: string, size = SIZE): Outcome => ({
  kind: 'error',
  status: 416,
  type: 'range.not_satisfiable',
  message,
  explanation: 'The Range requested is not available.',
  detail: message,
  headers: { 'Content-Range': `bytes */${size}` },
});
const badRequest = (type: string, message: string): Outcome => ({ kind: 'error', status: 400, type, message, explanation: message, detail: '', headers: null });

const INVALID_RANGE = refused('Invalid Range header.');
const INVALID_CONTENT_RANGE = refused('Invalid Content-Range header.');
const RANGE_START = refused('Invalid start position in Range header. Start position MUST be in the inclusive range [0, 31].');
const LEGACY_START = refused('Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, 31].');
const LEGACY_STOP = refused('Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, 31].');
const MULTIPLE = badRequest(
  'range.multiple',
  'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.',
);
const tooMany = (max: number) => badRequest('range.too_many', `Too many ranges in the Range header: at most ${max} are served in one request.`);

/** The test name states the HTTP outcome. */
function says(expected: Outcome): string {
  switch (expected.kind) {
    case 'whole':
      return 'should 200 with the whole image';
    case 'partial':
      if (expected.ranges.length === 1) {
        const [r] = expected.ranges;
        return `should 206 with bytes ${r?.start}-${r?.end}/${SIZE}`;
      }
      return `should 206 multipart with ${expected.ranges.map((r) => `${r.start}-${r.end}`).join(', ')}`;
    default:
      return `should ${expected.status} ${JSON.stringify(expected.message)}`;
  }
}

const decide = (request: Omit<RangeRequest, 'size'>): Outcome => outcome(decideRange({ size: SIZE, ...request }));

describe('2. Image data: Range (Glance, with RFC 9110 fixes marked ours)', () => {
  it('should 200 with the whole image when no range is asked for', () => {
    expect(decide({})).toEqual(WHOLE);
  });

  describe('rows of the contract', () => {
    const rows: [string, Outcome][] = [
      ['bytes=0-9', slice([0, 9])],
      ['bytes=12-32', slice([12, 31])],
      ['bytes=12-', slice([12, 31])],
      ['bytes=12-31', slice([12, 31])],
      ['bytes=-5', slice([27, 31])],
      ['bytes=-40', slice([0, 31])],
      ['bytes=0-99999', slice([0, 31])],
      ['bytes=32-', RANGE_START],
      ['bytes=999999-', RANGE_START],
      ['bytes=5-3', INVALID_RANGE],
      ['bytes=abc', INVALID_RANGE],
      ['items=0-1', INVALID_RANGE],
      ['bytes=', INVALID_RANGE],
      ['bytes=0-1,4-5', MULTIPLE],
      // ` bytes = 1-2 ` as the contract writes it: HTTP strips the blanks around a field value
      // (RFC 9110 §5.5), so the decision sees `bytes = 1-2` (as webob does behind its WSGI server).
      ['bytes = 1-2', slice([1, 2])],
      ['BYTES=1-2', slice([1, 2])],
      // Ours: no byte at all is unsatisfiable (Glance sends the whole image as 206).
      ['bytes=-0', INVALID_RANGE],
    ];
    for (const [range, expected] of rows) {
      it(`${says(expected)} for Range: ${JSON.stringify(range)}`, () => {
        expect(decide({ range })).toEqual(expected);
      });
    }
  });

  describe('answers recorded from Glance 25.1.0', () => {
    const rows: [string, Outcome][] = [
      ['bytes=1-2,abc', MULTIPLE],
      ['bytes=1-2,', MULTIPLE],
      ['bytes=,1-2', MULTIPLE],
      ['bytes=1-2 ,', MULTIPLE],
      ['bytes= 1 - 2', slice([1, 2])],
      ['Bytes  =  1  -  2', slice([1, 2])],
      ['bytes=01-02', slice([1, 2])],
      ['bytes=+1-2', INVALID_RANGE],
      ['bytes=0-0', slice([0, 0])],
      ['bytes=31-31', slice([31, 31])],
      ['bytes=0-', slice([0, 31])],
      ['bytes=-32', slice([0, 31])],
      ['bytes=-31', slice([1, 31])],
      // webob matches a prefix: what follows the range is ignored.
      ['bytes=1-2xyz', slice([1, 2])],
      ['bytes=1-2 3', slice([1, 2])],
      // webob's grammar allows spaces, not tabs.
      ['bytes=\t1-2', INVALID_RANGE],
      // Glance compares Python integers exactly; past 2^53 a float would see 9007199254740993 as
      // 9007199254740992, start == end, and answer the start position error instead.
      ['bytes=9007199254740993-9007199254740992', INVALID_RANGE],
      ['bytes=99999999999999999999-99999999999999999998', INVALID_RANGE],
    ];
    for (const [range, expected] of rows) {
      it(`${says(expected)} for Range: ${JSON.stringify(range)}`, () => {
        expect(decide({ range })).toEqual(expected);
      });
    }
  });

  describe('ours where Glance fails', () => {
    it('should 416 "Invalid Range header." for bytes=- (Glance answers 500)', () => {
      expect(decide({ range: 'bytes=-' })).toEqual(INVALID_RANGE);
    });

    it('should 416 "Invalid Range header." for an empty Range header', () => {
      expect(decide({ range: '' })).toEqual(INVALID_RANGE);
    });

    it('should 416 with Content-Range: bytes */1 on a 1-byte image for bytes=1-', () => {
      expect(outcome(decideRange({ range: 'bytes=1-', size: 1 }))).toEqual(
        refused('Invalid start position in Range header. Start position MUST be in the inclusive range [0, 0].', 1),
      );
    });

    it('should 206 with bytes 0-0/1 on a 1-byte image for bytes=-5', () => {
      expect(outcome(decideRange({ range: 'bytes=-5', size: 1 }))).toEqual(slice([0, 0]));
    });
  });

  describe('an active image of zero bytes (Glance)', () => {
    // Recorded from Glance 25.1.0, but for bytes=-N (Glance: a 206 `bytes 0--1/0`, ours a 416).
    it.each(['bytes=0-9', 'bytes=0-', 'bytes=-0', 'bytes=-5', 'bytes=-1', 'bytes=-99999999999999999999'])('should 416 "Invalid start position … [0, -1]." with Content-Range: bytes */0 for %s', (range) => {
      expect(outcome(decideRange({ range, size: 0 }))).toEqual(
        refused('Invalid start position in Range header. Start position MUST be in the inclusive range [0, -1].', 0),
      );
    });
  });
});

describe('2. Image data: the legacy request form (Content-Range on a download)', () => {
  const rows: [string, Outcome][] = [
    // Rows of the contract and the answers recorded from Glance 25.1.0.
    ['bytes 12-30/32', slice([12, 30])],
    ['bytes 12-30/*', slice([12, 30])],
    ['bytes 12-40/*', LEGACY_STOP],
    ['bytes 40-45/*', LEGACY_STOP],
    ['bytes 0-32/*', LEGACY_STOP],
    ['bytes 32-40/*', LEGACY_STOP],
    ['bytes 12-40/32', INVALID_CONTENT_RANGE],
    ['bytes 12-31/10', INVALID_CONTENT_RANGE],
    ['bytes 30-12/*', INVALID_CONTENT_RANGE],
    ['items 1-2/*', INVALID_CONTENT_RANGE],
    ['bytes 1-2', INVALID_CONTENT_RANGE],
    ['BYTES 1-2/*', INVALID_CONTENT_RANGE],
    ['bytes  1-2/*', INVALID_CONTENT_RANGE],
    ['bytes 0-0/0', INVALID_CONTENT_RANGE],
    ['bytes 12-31/99', slice([12, 31])],
    ['bytes 12-30/31', slice([12, 30])],
    ['bytes 31-31/*', slice([31, 31])],
    ['bytes 2-2/*', slice([2, 2])],
    ['bytes 0-0/1', slice([0, 0])],
    ['bytes 01-02/*', slice([1, 2])],
    ['bytes 1-2/*xyz', slice([1, 2])],
    ['bytes 32-40/50', LEGACY_START],
    ['bytes 40-45/50', LEGACY_START],
    ['bytes 32-32/33', LEGACY_START],
    // Python integers again: 9007199254740992-9007199254740992 is a valid one-byte range ending past the image.
    ['bytes 9007199254740992-9007199254740992/*', LEGACY_STOP],
    ['bytes 9007199254740993-9007199254740992/*', INVALID_CONTENT_RANGE],
    // Ours: Glance answers 500 on `bytes */32`, and hangs on an end past the image with a stated length.
    ['bytes */32', INVALID_CONTENT_RANGE],
    ['bytes */*', INVALID_CONTENT_RANGE],
    ['bytes 12-40/50', LEGACY_STOP],
  ];
  for (const [contentRange, expected] of rows) {
    it(`${says(expected)} for Content-Range: ${JSON.stringify(contentRange)}`, () => {
      expect(decide({ contentRange })).toEqual(expected);
    });
  }

  describe('Range present together with Content-Range: Range wins', () => {
    it('should 206 with bytes 3-4/32 for Range bytes=3-4 and Content-Range bytes 1-2/*', () => {
      expect(decide({ range: 'bytes=3-4', contentRange: 'bytes 1-2/*' })).toEqual(slice([3, 4]));
    });

    it('should 416 "Invalid Range header." for an invalid Range beside a valid Content-Range', () => {
      expect(decide({ range: 'bytes=abc', contentRange: 'bytes 1-2/*' })).toEqual(INVALID_RANGE);
    });

    it('should 416 with the Range start position error for bytes=32- beside a valid Content-Range', () => {
      expect(decide({ range: 'bytes=32-', contentRange: 'bytes 1-2/*' })).toEqual(RANGE_START);
    });

    it('should 400 for multiple ranges beside a valid Content-Range', () => {
      expect(decide({ range: 'bytes=0-1,4-5', contentRange: 'bytes 1-2/*' })).toEqual(MULTIPLE);
    });

    it('should 206 with bytes 3-4/32 for a valid Range beside an invalid Content-Range', () => {
      expect(decide({ range: 'bytes=3-4', contentRange: 'bytes */32' })).toEqual(slice([3, 4]));
    });
  });
});

describe('2. Image data: If-Range (strong comparison)', () => {
  const rows: [string, Omit<RangeRequest, 'size'>, Outcome][] = [
    ['the current strong ETag', { range: 'bytes=0-9', ifRange: ETAG, etag: ETAG }, slice([0, 9])],
    ['the current strong ETag and an invalid Range', { range: 'bytes=abc', ifRange: ETAG, etag: ETAG }, INVALID_RANGE],
    ['the current strong ETag and a legacy Content-Range', { contentRange: 'bytes 12-30/*', ifRange: ETAG, etag: ETAG }, slice([12, 30])],
    ['a stale ETag', { range: 'bytes=0-9', ifRange: '"0000"', etag: ETAG }, WHOLE],
    ['a stale ETag and an invalid Range', { range: 'bytes=abc', ifRange: '"0000"', etag: ETAG }, WHOLE],
    ['a stale ETag and a legacy Content-Range', { contentRange: 'bytes 12-30/*', ifRange: '"0000"', etag: ETAG }, WHOLE],
    ['the weak form of the current ETag', { range: 'bytes=0-9', ifRange: `W/${ETAG}`, etag: ETAG }, WHOLE],
    ['a weak ETag that is the image validator', { range: 'bytes=0-9', ifRange: 'W/"x"', etag: 'W/"x"' }, WHOLE],
    ['a date', { range: 'bytes=0-9', ifRange: 'Wed, 21 Oct 2015 07:28:00 GMT', etag: ETAG }, WHOLE],
    ['an ETag when the image has none', { range: 'bytes=0-9', ifRange: ETAG, etag: null }, WHOLE],
    // RFC 9110 §13.1.5: a Range whose If-Range fails is ignored, however many ranges it names.
    ['a stale ETag and too many ranges', { range: 'bytes=0-1,4-5,8-9,12-13', ifRange: '"0000"', etag: ETAG, maxRanges: 3 }, WHOLE],
    ['a stale ETag and several ranges when only one is served', { range: 'bytes=0-1,4-5', ifRange: '"0000"', etag: ETAG }, WHOLE],
    ['no Range', { ifRange: ETAG, etag: ETAG }, WHOLE],
    ['no Range and a stale ETag', { ifRange: '"0000"', etag: ETAG }, WHOLE],
  ];
  for (const [name, request, expected] of rows) {
    it(`${says(expected)} for If-Range with ${name}`, () => {
      expect(decide(request)).toEqual(expected);
    });
  }
});

describe('2. Image data: multiple ranges (multipart/byteranges when enabled, ours)', () => {
  const rows: [string, Outcome][] = [
    ['bytes=0-1,4-5', slice([0, 1], [4, 5])],
    ['bytes=4-5,0-1', slice([4, 5], [0, 1])],
    ['bytes=0-4,3-8', slice([0, 8])],
    ['bytes=0-1,2-3', slice([0, 3])],
    ['bytes=0-1,1-2,5-6,7-9', slice([0, 2], [5, 9])],
    ['bytes=-40,0-1', slice([0, 31])],
    ['bytes=0-1,-40', slice([0, 31])],
    ['bytes=0-1,-5', slice([0, 1], [27, 31])],
    ['bytes=0-1,999-', slice([0, 1])],
    ['bytes=0-1,20-99999', slice([0, 1], [20, 31])],
    ['bytes = 0-1 , 4 - 5', slice([0, 1], [4, 5])],
    ['BYTES=0-1,4-5', slice([0, 1], [4, 5])],
    ['bytes=999-,32-40', RANGE_START],
    ['bytes=32-,-0', RANGE_START],
    ['bytes=0-1,abc', INVALID_RANGE],
    ['bytes=0-1,', INVALID_RANGE],
    ['bytes=,0-1', INVALID_RANGE],
    ['bytes=0-1,-', INVALID_RANGE],
    ['items=0-1,4-5', INVALID_RANGE],
    ['bytes 0-1,4-5', INVALID_RANGE],
  ];
  for (const [range, expected] of rows) {
    it(`${says(expected)} for Range: ${JSON.stringify(range)} (maxRanges 5)`, () => {
      expect(decide({ range, maxRanges: 5 })).toEqual(expected);
    });
  }

  it('should 400 with Glance\'s text for bytes=0-1,4-5 when maxRanges is 1', () => {
    expect(decide({ range: 'bytes=0-1,4-5', maxRanges: 1 })).toEqual(MULTIPLE);
  });

  it('should 206 multipart with 3 ranges when maxRanges is 3', () => {
    expect(decide({ range: 'bytes=0-1,4-5,8-9', maxRanges: 3 })).toEqual(slice([0, 1], [4, 5], [8, 9]));
  });

  it('should 400 range.too_many for 4 ranges when maxRanges is 3', () => {
    expect(decide({ range: 'bytes=0-1,4-5,8-9,12-13', maxRanges: 3 })).toEqual(tooMany(3));
  });

  it('should 400 range.too_many without parsing: 3 commas of garbage when maxRanges is 3', () => {
    expect(decide({ range: 'garbage,,,', maxRanges: 3 })).toEqual(tooMany(3));
  });

  it('should 400 range.too_many at once for a header of 100000 commas', () => {
    const range = `bytes=${'0-0,'.repeat(100_000)}0-0`;
    const started = process.hrtime.bigint();
    const decision = decide({ range, maxRanges: 10 });
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50);
    expect(decision).toEqual(tooMany(10));
  });

  it('should 416 with Content-Range: bytes */32 when every range is unsatisfiable', () => {
    expect(decide({ range: 'bytes=40-50,32-,-0', maxRanges: 5 })).toEqual(RANGE_START);
  });
});

describe('2. Image data: tooManyRanges (counting commas, before the image is looked up)', () => {
  const TOO_MANY_3 = { status: 400, type: 'range.too_many', message: 'Too many ranges in the Range header: at most 3 are served in one request.' };
  const rows: [string | undefined, number, typeof TOO_MANY_3 | null][] = [
    [undefined, 3, null],
    ['bytes=0-1,4-5,8-9', 3, null],
    ['bytes=0-1,4-5,8-9,12-13', 3, TOO_MANY_3],
    ['garbage,,,', 3, TOO_MANY_3],
    ['bytes=0-1,4-5,8-9,12-13', 1, null],
    ['bytes=0-1,4-5,8-9,12-13', 0, null],
  ];
  for (const [header, max, expected] of rows) {
    it(`should ${expected ? '400 range.too_many' : 'not refuse'} for Range: ${JSON.stringify(header)} with at most ${max} ranges`, () => {
      const err = tooManyRanges(header, max);
      expect(err && { status: err.status, type: err.type, message: err.message }).toEqual(expected);
    });
  }
});

describe('2. Image data: parseByteRanges (range-parser, its codes wrapped once)', () => {
  const rows: [string, ReturnType<typeof parseByteRanges>][] = [
    ['bytes=0-1,4-5', { ranges: [{ start: 0, end: 1 }, { start: 4, end: 5 }] }],
    ['bytes=0-4,3-8', { ranges: [{ start: 0, end: 8 }] }],
    ['bytes=0-1,2-3', { ranges: [{ start: 0, end: 3 }] }],
    ['bytes=-40', { ranges: [{ start: 0, end: 31 }] }],
    ['bytes=-32', { ranges: [{ start: 0, end: 31 }] }],
    ['bytes=-5', { ranges: [{ start: 27, end: 31 }] }],
    ['bytes=12-99', { ranges: [{ start: 12, end: 31 }] }],
    [' Bytes = 0-1', { ranges: [{ start: 0, end: 1 }] }],
    ['bytes=0-1,999-', { ranges: [{ start: 0, end: 1 }] }],
    ['bytes', 'malformed'],
    ['bytes=abc', 'malformed'],
    ['items=0-1', 'malformed'],
    ['bytesx=0-1', 'malformed'],
    ['bytes=0-1,', 'malformed'],
    ['bytes=-', 'malformed'],
    ['bytes=1-2-3', 'malformed'],
    ['bytes=+1-2', 'malformed'],
    ['bytes=32-', 'unsatisfiable'],
    ['bytes=40-50', 'unsatisfiable'],
    ['bytes=5-3', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
  ];
  it.each(rows)('should parse %j on a 32-byte image as %j', (header, expected) => {
    expect(parseByteRanges(header, SIZE)).toEqual(expected);
  });
});
