/**
 * How Glance reads a request, asked of Glance's own code: starts test/helpers/glance_reading.py
 * (eventlet.wsgi in front of Glance's version negotiation, paste's urlmap and the v2 Routes
 * mapper, answering what it routed instead of calling a controller) under Debian's
 * /usr/bin/python3, and sends it requests byte for byte over a socket, so the request target goes
 * exactly as written: fragments, absolute form, odd escapes.
 */
import net from 'node:net';
import path from 'node:path';
import { startPythonServer } from './python-server';

export { PYTHON } from './python-server';
const SCRIPT = path.join(__dirname, 'glance_reading.py');


/** What Glance made of a request. */
export interface GlanceReading {
  /** The request reached a controller (the helper answers instead of calling it). */
  readonly routed: boolean;
  /** When not routed: the status Glance answers (300 versions, 404 no route, 500 ...). */
  readonly status?: number;
  /** The method the route was matched with: the request's, or its `_method` override. */
  readonly method?: string;
  /** The controller method the route names (`show`, `update`, `upload`, `reject`, ...). */
  readonly action?: string;
  /** The class of the controller (`ImagesController`, `RejectMethodController`, ...). */
  readonly controller?: string;
  /** The route's path in the v2 mapper (`/images/{image_id}/file`). */
  readonly route?: string | null;
  /** The image id the controller is called with. */
  readonly image_id?: string | null;
  readonly path_info?: string;
  /** For `reject` routes: what the 405 answer would allow. */
  readonly allowed_methods?: string | null;
  readonly raw_path_info?: string | null;
  readonly query_string?: string | null;
  /** The Accept header as eventlet hands it on (repeated headers joined by commas). */
  readonly accept?: string | null;
  /** The token keystonemiddleware's auth_token would validate (X-Auth-Token, else X-Storage-Token). */
  readonly token?: string | null;
  readonly error?: string;
}

/** The server's answer to a request it could not parse (eventlet's own 400, 414, ...). */
export interface Refused {
  readonly refused: true;
  readonly statusLine: string;
}

export interface GlanceReader {
  /** Send `method target` with `headers` (and `body`), verbatim, and return Glance's reading. */
  read(method: string, target: string, headers?: readonly (readonly [string, string])[], body?: string): Promise<GlanceReading | Refused>;
  stop(): Promise<void>;
}

/** Start the helper, failing with what to install when Python or a module is missing. */
export async function startGlanceReader(): Promise<GlanceReader> {
  const server = await startPythonServer(SCRIPT, 'it reads requests with Glance\'s own code');
  return {
    read: (method, target, headers = [], body) => send(server.port, method, target, headers, body, server.stderr),
    stop: server.stop,
  };
}

function send(port: number, method: string, target: string, headers: readonly (readonly [string, string])[], body: string | undefined, stderr: () => string): Promise<GlanceReading | Refused> {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  lines.push('Connection: close', '', body ?? '');
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10000, () => socket.destroy(new Error(`no answer to ${method} ${target}`)));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const statusLine = text.slice(0, text.indexOf('\r\n'));
      if (!statusLine.startsWith('HTTP/1.1 200') || split === -1) return resolve({ refused: true, statusLine });
      try {
        resolve(JSON.parse(text.slice(split + 4)) as GlanceReading);
      } catch {
        reject(new Error(`glance_reading.py answered ${method} ${target} with ${text}\n${stderr()}`));
      }
    });
    socket.end(lines.join('\r\n'), 'utf8');
  });
}

export function isRefused(r: GlanceReading | Refused): r is Refused {
  return 'refused' in r;
}
