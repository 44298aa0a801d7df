/**
 * A lingering close, as Apache and nginx do it, for an answer sent before the request's body was
 * read (a refused upload, a patch over the size limit, a framing refusal).
 *
 * Closing a socket with request data unread makes the kernel reset the connection, and a client
 * still sending (or the sidecar forwarding an upload) may then lose the answer it was sent: the race
 * tests through the sidecar saw a refused upload answered 502 one run in three. So once the answer
 * is out, the connection is half-closed, what still comes is read and dropped, and it is closed when
 * the client has sent everything or after LINGER_MS, whichever comes first: never the whole of a
 * large upload.
 *
 * node:http ends an answer that says `Connection: close` by calling the socket's `destroySoon()`:
 * that one socket's is replaced, the only hook Node gives. Should a Node version stop calling it,
 * the close is abrupt again; test/http/linger.test.ts fails then, on every Node the CI runs.
 */
import type { IncomingMessage } from 'node:http';

/** How long a connection closed with request data still coming goes on reading (and dropping) it. */
export const LINGER_MS = 2000;

/** Close `req`'s connection gently once the answer that says `Connection: close` is out. */
export function lingerBeforeClosing(req: IncomingMessage): void {
  const socket = req.socket as IncomingMessage['socket'] & { destroySoon?: () => void };
  socket.destroySoon = function lingeringClose() {
    socket.end();
    req.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}
