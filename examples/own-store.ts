/**
 * Mount mode: glance-edge in front of your own image service, in your own Express app.
 *
 * Here the image service is any Glance v2 API reachable over HTTP (the guard asks it about an
 * image with the caller's own credentials); with an in-process store, pass a lookup function
 * instead (see the demo in server/demo/app.ts).
 *
 *   npx tsc --outDir /tmp/own-store && node /tmp/own-store/examples/own-store.js   (or your TypeScript runner)
 */
import express from 'express';
import { glanceErrorHandler, locationGuard } from '../lib';

const upstream = process.env['IMAGE_SERVICE_URL'] ?? 'http://127.0.0.1:19292';
const app = express();

// 1. The guard goes first, before any body parser: it reads a patch, judges it, and puts the
//    client's exact bytes back on the request for whatever follows.
app.use(locationGuard({ lookup: upstream }));

// 2. Your own routes. The body is readable as usual (here by express.raw), and the exact bytes
//    are also on req.glanceEdge.body when the guard inspected them.
app.patch('/v2/images/:id', express.raw({ type: () => true }), (req, res) => {
  res.json({ wouldApply: JSON.parse(String(req.body)) as unknown });
});

// 3. Errors of the suite (and yours) in Glance's format.
app.use(glanceErrorHandler());

app.listen(8080, '127.0.0.1', () => console.log('listening on http://127.0.0.1:8080'));
