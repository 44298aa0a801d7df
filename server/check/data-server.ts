/**
 * The check's own data for http:// image locations: a small server on `--serve-on` that answers
 * `GET` and `HEAD` of two paths under the run's name with the 32-byte image, and 404 to anything
 * else. The image service fetches from it (Glance's http store asks `HEAD` for the size first).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The 32 bytes of every image of the check: each range shows which bytes it holds. */
export const CHECK_DATA = Buffer.from('0123456789abcdefghijklmnopqrstuv');

export interface DataServer {
  /** The two location URLs, as the image service is given them. */
  readonly urls: readonly [string, string];
  close(): Promise<void>;
}

/** Listen on `host:port` (port 0: a free one) and serve the data under `/<run>/a` and `/<run>/b`. */
export function startDataServer(host: string, port: number, run: string): Promise<DataServer> {
  const paths = [`/${run}/a`, `/${run}/b`] as const;
  const server = http.createServer((req, res) => {
    if (!paths.includes(req.url as (typeof paths)[number]) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': CHECK_DATA.length });
    res.end(req.method === 'HEAD' ? undefined : CHECK_DATA);
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = (server.address() as AddressInfo).port;
      const origin = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
      resolve({
        urls: [`${origin}${paths[0]}`, `${origin}${paths[1]}`],
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
