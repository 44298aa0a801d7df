"""How Glance reads a request, told by Glance's own code.

A real eventlet.wsgi server on 127.0.0.1 (the port is the first line on stdout) running the WSGI
pieces Glance's API pipeline (glance-api-paste.ini) runs in front of its controllers: oslo's
healthcheck, glance's VersionNegotiationFilter, paste's urlmap as glance.api.root_app_factory
builds it ('/' the versions app, '/v2' the v2 router), and glance.api.v2.router.API with its Routes
mapper and RoutesMiddleware (the `_method` override). Only the last step differs: where the router
would call a controller, it answers what it matched as JSON. Every other answer (the versions
documents, no route, an error) becomes {"routed": false, "status": <Glance's status>}.

cors, http_proxy_to_wsgi, osprofiler and the context middleware do not change the path, the query
or the method with this configuration, and are left out. Run with Debian's /usr/bin/python3.
"""
import json
import sys

import eventlet
import eventlet.wsgi
from oslo_config import cfg

from glance.api import root_app_factory
from glance.api import versions
from glance.api.middleware.version_negotiation import VersionNegotiationFilter
from glance.api.v2.router import API
from glance.common import wsgi
from keystonemiddleware.auth_token._request import _AuthTokenRequest
from oslo_middleware import Healthcheck
import webob
import webob.dec

cfg.CONF([], project='glance', default_config_files=[])

KEY = 'glance_reading'


def _answer(environ, start_response, body):
    data = json.dumps(body).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(data)))])
    return [data]


@staticmethod
@webob.dec.wsgify
def _dispatch(req):
    """Router._dispatch, answering what matched instead of calling the controller."""
    match = req.environ['wsgiorg.routing_args'][1]
    if not match:
        return _original_dispatch(req)
    resource = match['controller']
    controller = getattr(resource, 'controller', resource)
    route = req.environ.get('routes.route')
    req.environ[KEY]['answer'] = {
        'routed': True,
        'method': req.environ[KEY].get('method'),
        'request_method': req.environ['REQUEST_METHOD'],
        'action': match.get('action'),
        'controller': type(controller).__name__,
        'route': route.routepath if route is not None else None,
        'image_id': match.get('image_id'),
        'path_info': req.environ['PATH_INFO'],
        'allowed_methods': match.get('allowed_methods'),
    }
    return webob.Response(status=200)


_original_dispatch = wsgi.Router._dispatch
wsgi.Router._dispatch = _dispatch


def build():
    router = API.factory({})
    routematch = router.map.routematch

    def recording_routematch(url=None, environ=None):
        # RoutesMiddleware puts the overriding method in the environ while it matches, then
        # restores the request's own: record the one the route was matched with.
        env = environ or router.map.environ
        env[KEY]['method'] = env['REQUEST_METHOD']
        return routematch(url, environ)

    router.map.routematch = recording_routematch

    class Loader(object):
        apps = {'apiversions': versions.create_resource({}), 'apiv2app': router}

        def get_app(self, name, global_conf=None):
            return self.apps[name]

    root = root_app_factory(Loader(), {}, **{'/': 'apiversions', '/v2': 'apiv2app'})
    negotiation = VersionNegotiationFilter(root)
    return Healthcheck(negotiation, {'backends': 'disable_by_file',
                                     'disable_by_file_path': '/nonexistent/healthcheck_disable'})


PIPELINE = build()


def app(environ, start_response):
    environ[KEY] = {}
    token = _AuthTokenRequest(environ.copy()).user_token
    reading = {'raw_path_info': environ.get('RAW_PATH_INFO'),
               'query_string': environ.get('QUERY_STRING'),
               'accept': environ.get('HTTP_ACCEPT'),
               'token': token}
    try:
        res = webob.Request(environ).get_response(PIPELINE)
        status = res.status_int
    except Exception as e:  # Glance's server would answer 500
        status, reading['error'] = 500, repr(e)
    answer = environ[KEY].get('answer') or {'routed': False, 'status': status}
    answer.update(reading)
    return _answer(environ, start_response, answer)


def main():
    sock = eventlet.listen(('127.0.0.1', 0))
    print(sock.getsockname()[1], flush=True)
    eventlet.wsgi.server(sock, app, log_output=False, debug=False)


if __name__ == '__main__':
    sys.exit(main())
