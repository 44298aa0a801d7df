/**
 * BEHAVIOUR.md §0: every error the suite answers is rendered as webob renders Glance's, byte for byte.
 * The expected bodies below are answers recorded from Glance 25.1.0, written out literally.
 */
import express from 'express';
import { rawBody } from './helpers/http';
import createError from 'http-errors';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import request from 'supertest';
import {
  glanceError,
  glanceErrorHandler,
  isGlanceError,
  negotiateErrorForm,
  renderGlanceError,
  sendGlanceError,
  toGlanceError,
} from '../lib/errors';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;


const QUEUED = "It's not allowed to remove locations if image status is queued.";
const PLAIN_409 = "409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   ";
const JSON_409 =
  '{"message": "It\'s not allowed to remove locations if image status is queued.<br /><br />\\n\\n\\n", "code": "409 Conflict", "title": "Conflict"}';
const HTML_409 =
  '<html>\n <head>\n  <title>409 Conflict</title>\n </head>\n <body>\n  <h1>409 Conflict</h1>\n' +
  '  It&#x27;s not allowed to remove locations if image status is queued.<br /><br />\n\n\n\n </body>\n</html>';
const JSON_403_EMPTY =
  '{"message": "Access was denied to this resource.<br /><br />\\nCannot set locations to empty list.\\n\\n", "code": "403 Forbidden", "title": "Forbidden"}';
const HTML_403_EMPTY =
  '<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n' +
  '  Access was denied to this resource.<br /><br />\nCannot set locations to empty list.\n\n\n </body>\n</html>';
const PLAIN_500 = '500 Internal Server Error\n\nThe server has either erred or is incapable of performing the requested operation.\n\n   ';

const conflict = () => glanceError(409, 'location.conflict', QUEUED);
const emptyList = () => glanceError(403, 'location.empty', 'Cannot set locations to empty list.', { afterStockSentence: true });
const badRange = () =>
  glanceError(416, 'range.invalid', 'Invalid Range header.', { afterStockSentence: true, headers: { 'Content-Range': 'bytes */32' } });

let handler: Handler = (_req, res) => res.end();
let seenAccept: string | undefined;
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seenAccept = req.headers.accept;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seenAccept = undefined;
});

/** Answer every request with `error`. */
function answerWith(error: unknown): void {
  handler = (req, res) => sendGlanceError(req, res, error);
}

function get(accept?: string) {
  const test = request(base).get('/v2/images/1').buffer(true).parse(rawBody);
  return accept === undefined ? test : test.set('Accept', accept);
}

describe('0. Error bodies', () => {
  describe("Glance's recorded answers", () => {
    it('should 409 in plain text when the request has no Accept', async () => {
      answerWith(conflict());
      const res = await get();
      expect(seenAccept).toBeUndefined();
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(PLAIN_409)));
      expect((res.body as Buffer).toString('utf8')).toBe(PLAIN_409);
    });

    it('should 409 in JSON when the request accepts application/json', async () => {
      answerWith(conflict());
      const res = await get('application/json');
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(JSON_409)));
      expect((res.body as Buffer).toString('utf8')).toBe(JSON_409);
    });

    it('should 409 in HTML when the request accepts */*', async () => {
      answerWith(conflict());
      const res = await get('*/*');
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe('188');
      expect((res.body as Buffer).toString('utf8')).toBe(HTML_409);
    });

    it('should 403 in JSON with the stock sentence first for an empty location list', async () => {
      answerWith(emptyList());
      const res = await get('application/json');
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(JSON_403_EMPTY)));
      expect((res.body as Buffer).toString('utf8')).toBe(JSON_403_EMPTY);
    });

    it('should 403 in HTML with the stock sentence first for an empty location list', async () => {
      answerWith(emptyList());
      const res = await get('*/*');
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe('192');
      expect((res.body as Buffer).toString('utf8')).toBe(HTML_403_EMPTY);
    });
  });

  describe('416, which webob prefixes with its own sentence', () => {
    it('should 416 in plain text with both sentences and keep Content-Range', async () => {
      answerWith(badRange());
      const res = await get();
      const body = '416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n Invalid Range header.  ';
      expect(res.status).toBe(416);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-range']).toBe('bytes */32');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 416 in JSON with both sentences', async () => {
      answerWith(badRange());
      const res = await get('application/json');
      const body =
        '{"message": "The Range requested is not available.<br /><br />\\nInvalid Range header.\\n\\n", ' +
        '"code": "416 Request Range Not Satisfiable", "title": "Request Range Not Satisfiable"}';
      expect(res.status).toBe(416);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['content-range']).toBe('bytes */32');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 416 in HTML with both sentences', async () => {
      answerWith(badRange());
      const res = await get('text/html');
      const body =
        '<html>\n <head>\n  <title>416 Request Range Not Satisfiable</title>\n </head>\n <body>\n  <h1>416 Request Range Not Satisfiable</h1>\n' +
        '  The Range requested is not available.<br /><br />\nInvalid Range header.\n\n\n </body>\n</html>';
      expect(res.status).toBe(416);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-range']).toBe('bytes */32');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });
  });

  describe('negotiation on Accept (webob offers text/html, then application/json)', () => {
    const forms = {
      plain: { type: 'text/plain; charset=UTF-8', body: PLAIN_409 },
      json: { type: 'application/json', body: JSON_409 },
      html: { type: 'text/html; charset=UTF-8', body: HTML_409 },
    } as const;

    it.each<[string, string | undefined, keyof typeof forms]>([
      ['absent', undefined, 'plain'],
      ['text/plain', 'text/plain', 'plain'],
      ['application/json', 'application/json', 'json'],
      ['*/*', '*/*', 'html'],
      ['text/html', 'text/html', 'html'],
      ['application/json, text/html (a tie goes to text/html)', 'application/json, text/html', 'html'],
      ['application/json, */*;q=0.1', 'application/json, */*;q=0.1', 'json'],
      ['text/*;q=0', 'text/*;q=0', 'plain'],
      ['text/html;q=0.5, application/json', 'text/html;q=0.5, application/json', 'json'],
      ['application/*', 'application/*', 'json'],
      ['text/plain, application/json', 'text/plain, application/json', 'json'],
      ['image/png', 'image/png', 'plain'],
      ['application/json;q=0', 'application/json;q=0', 'plain'],
      ['unparseable (webob then accepts anything)', 'garbage', 'html'],
      ['with a q out of range (unparseable)', 'application/json;q=2', 'html'],
    ])('should 409 with the right form when Accept is %s', async (_name, accept, form) => {
      answerWith(conflict());
      const res = await get(accept);
      expect(seenAccept).toBe(accept);
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe(forms[form].type);
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(forms[form].body)));
      expect((res.body as Buffer).toString('utf8')).toBe(forms[form].body);
      expect(negotiateErrorForm(accept)).toBe(form);
    });
  });

  describe('escaping', () => {
    const message = `<b>"quoted" & 'single'</b> > done`;
    const error = () => glanceError(400, 'test.escape', message);

    it('should 400 in HTML with < > & " \' escaped as Python html.escape does', async () => {
      answerWith(error());
      const res = await get('text/html');
      const body =
        '<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad Request</h1>\n' +
        '  &lt;b&gt;&quot;quoted&quot; &amp; &#x27;single&#x27;&lt;/b&gt; &gt; done<br /><br />\n\n\n\n </body>\n</html>';
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 409 in HTML with non-ASCII as decimal character references, as webob html_escape does', async () => {
      answerWith(glanceError(409, 'test.unicode', 'Image «snö☃» 🚀 is busy.'));
      const res = await get('text/html');
      const body =
        '<html>\n <head>\n  <title>409 Conflict</title>\n </head>\n <body>\n  <h1>409 Conflict</h1>\n' +
        '  Image &#171;sn&#246;&#9731;&#187; &#128640; is busy.<br /><br />\n\n\n\n </body>\n</html>';
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 400 in JSON with the message unescaped apart from JSON quoting', async () => {
      answerWith(error());
      const res = await get('application/json');
      const body = `{"message": "<b>\\"quoted\\" & 'single'</b> > done<br /><br />\\n\\n\\n", "code": "400 Bad Request", "title": "Bad Request"}`;
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/json');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 400 in plain text with tags stripped as webob strip_tags does', async () => {
      answerWith(error());
      const res = await get();
      const body = `400 Bad Request\n\n"quoted" & 'single' > done\n\n   `;
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 409 in JSON with non-ASCII written as \\uXXXX as Python json.dumps does', async () => {
      answerWith(glanceError(409, 'test.unicode', 'Image «snö☃» 🚀 is busy.'));
      const res = await get('application/json');
      const body =
        '{"message": "Image \\u00absn\\u00f6\\u2603\\u00bb \\ud83d\\ude80 is busy.<br /><br />\\n\\n\\n", "code": "409 Conflict", "title": "Conflict"}';
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect((res.body as Buffer).toString('latin1')).toBe(body);
    });

    it('should 409 in plain text with a Content-Length counting UTF-8 bytes', async () => {
      answerWith(glanceError(409, 'test.unicode', 'Image «snö☃» is busy.'));
      const res = await get();
      const body = '409 Conflict\n\nImage «snö☃» is busy.\n\n   ';
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(Buffer.from(body, 'utf8').length));
      expect(res.body).toEqual(Buffer.from(body, 'utf8'));
    });
  });

  describe('what is thrown', () => {
    it.each<[string, unknown]>([
      ['a string', 'db password is hunter2'],
      ['a plain Error', new Error('ECONNREFUSED 10.0.0.7:5432 (secret)')],
      ['a plain object with a status', { status: 409, message: 'secret' }],
      ['null', null],
      ['undefined', undefined],
      ['an unexposed http-errors 500', createError(500, 'stack trace with secrets')],
    ])('should 500 revealing nothing when %s is thrown', async (_name, thrown) => {
      answerWith(thrown);
      const res = await get();
      expect(res.status).toBe(500);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(PLAIN_500.length));
      expect((res.body as Buffer).toString('utf8')).toBe(PLAIN_500);
    });

    it('should 500 in JSON revealing nothing when a plain Error is thrown', async () => {
      answerWith(new Error('secret'));
      const res = await get('application/json');
      const body =
        '{"message": "The server has either erred or is incapable of performing the requested operation.<br /><br />\\n\\n\\n", ' +
        '"code": "500 Internal Server Error", "title": "Internal Server Error"}';
      expect(res.status).toBe(500);
      expect(res.headers['content-type']).toBe('application/json');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 413 with the message of a foreign http-errors object (body-parser style)', async () => {
      answerWith(createError(413, 'request entity too large', { type: 'entity.too.large' }));
      const res = await get();
      const body = '413 Request Entity Too Large\n\nrequest entity too large\n\n   ';
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      const converted = toGlanceError(createError(413, 'request entity too large', { type: 'entity.too.large' }));
      expect(converted.type).toBe('entity.too.large');
      expect(isGlanceError(converted, 'entity.too.large')).toBe(true);
    });
  });

  describe('headers', () => {
    it('should 415 with the Accept-Patch header that rides on the error', async () => {
      const accept = 'application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch';
      answerWith(
        glanceError(415, 'patch.media_type', 'The request media type is not supported by this server.', { headers: { 'Accept-Patch': accept } }),
      );
      const res = await get();
      const body = '415 Unsupported Media Type\n\nThe request media type is not supported by this server.\n\n   ';
      expect(res.status).toBe(415);
      expect(res.headers['accept-patch']).toBe(accept);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 405 with the headers of a foreign http-errors object', async () => {
      answerWith(createError(405, 'Method Not Allowed', { headers: { Allow: 'GET, HEAD' } }));
      const res = await get();
      const body = '405 Method Not Allowed\n\nMethod Not Allowed\n\n   ';
      expect(res.status).toBe(405);
      expect(res.headers['allow']).toBe('GET, HEAD');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });

    it('should 416 without the content headers set for the data it replaces, keeping the others', async () => {
      handler = (req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        res.setHeader('Content-Range', 'bytes 0-31/32');
        res.setHeader('Content-MD5', 'eIDkwyNNhY9U5B6DYJOkPQ==');
        res.setHeader('Content-Disposition', 'attachment');
        res.setHeader('ETag', '"abc"');
        res.setHeader('Last-Modified', 'Thu, 01 Jan 2026 00:00:00 GMT');
        res.setHeader('Accept-Ranges', 'bytes');
        res.setHeader('X-Openstack-Request-Id', 'req-1234');
        sendGlanceError(req, res, badRange());
      };
      const res = await get();
      const body = '416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n Invalid Range header.  ';
      expect(res.status).toBe(416);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-range']).toBe('bytes */32');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect(res.headers['content-md5']).toBeUndefined();
      expect(res.headers['content-disposition']).toBeUndefined();
      expect(res.headers['etag']).toBeUndefined();
      expect(res.headers['last-modified']).toBeUndefined();
      expect(res.headers['accept-ranges']).toBeUndefined();
      expect(res.headers['x-openstack-request-id']).toBe('req-1234');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
    });
  });

  describe('HEAD and answers already begun', () => {
    it('should 409 to HEAD with the headers of the GET answer and no body', async () => {
      answerWith(conflict());
      // A raw socket, so that any byte sent after the headers would be seen.
      const { port } = server.address() as AddressInfo;
      const wire = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end('HEAD /v2/images/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        });
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      });
      const [head = '', body] = wire.split('\r\n\r\n');
      const lines = head.split('\r\n');
      expect(lines[0]).toBe('HTTP/1.1 409 Conflict');
      expect(lines).toContain('Content-Type: text/plain; charset=UTF-8');
      expect(lines).toContain(`Content-Length: ${PLAIN_409.length}`);
      expect(body).toBe('');
    });

    it('should cut the connection when the 200 headers were already sent', async () => {
      handler = (req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '32' });
        res.write('0123456789', () => sendGlanceError(req, res, conflict()));
      };
      const result = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean; error: string }>(
        (resolve) => {
          const req = http.get(`${base}/v2/images/1/file`, { agent: false }, (res) => {
            const chunks: Buffer[] = [];
            let error = '';
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', (err) => (error = err.message));
            res.on('close', () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error }),
            );
          });
          req.on('error', () => undefined);
        },
      );
      expect(result.status).toBe(200);
      expect(result.headers['content-type']).toBe('application/octet-stream');
      expect(result.headers['content-length']).toBe('32');
      expect(result.body.toString('utf8')).toBe('0123456789');
      expect(result.complete).toBe(false);
      expect(result.error).toBe('aborted');
    });
  });

  describe('glanceErrorHandler in Express', () => {
    let app: http.Server;
    let appBase: string;

    beforeAll(async () => {
      const e = express();
      e.get('/v2/images/:id', (_req, _res, next) => next(conflict()));
      e.use(glanceErrorHandler());
      app = http.createServer(e);
      await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
      appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    });

    it('should 409 in HTML when a route passes the error to next()', async () => {
      const res = await request(appBase).get('/v2/images/abc').set('Accept', '*/*').buffer(true).parse(rawBody);
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe('188');
      expect((res.body as Buffer).toString('utf8')).toBe(HTML_409);
    });
  });

  describe('the renderer as a function', () => {
    it('should render the 409 of Glance in its three forms', () => {
      expect(renderGlanceError(conflict(), undefined)).toEqual({ contentType: 'text/plain; charset=UTF-8', body: PLAIN_409 });
      expect(renderGlanceError(conflict(), 'application/json')).toEqual({ contentType: 'application/json', body: JSON_409 });
      expect(renderGlanceError(conflict(), '*/*')).toEqual({ contentType: 'text/html; charset=UTF-8', body: HTML_409 });
    });

    it('should make errors that carry their status, type and both webob sentences', () => {
      const err = emptyList();
      expect(err.status).toBe(403);
      expect(err.type).toBe('location.empty');
      expect(err.message).toBe('Cannot set locations to empty list.');
      expect(err.explanation).toBe('Access was denied to this resource.');
      expect(err.detail).toBe('Cannot set locations to empty list.');
      expect(err.expose).toBe(true);
      expect(isGlanceError(err)).toBe(true);
      expect(isGlanceError(err, 'location.empty')).toBe(true);
      expect(isGlanceError(err, 'location.conflict')).toBe(false);
      expect(isGlanceError(new Error('x'))).toBe(false);
    });
  });
});
