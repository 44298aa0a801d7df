"""How Glance reads an image PATCH body, told by Glance's own code.

One JSON line in per body on stdin: {"contentType": "...", "bodyBase64": "..."}; one JSON line out
per body on stdout, in order. The body is read as Glance's images resource reads it: a
glance.common.wsgi.Request carrying the body with its Content-Length, handed to
glance.api.v2.images.RequestDeserializer.update(), and what that raises mapped to a status the way
glance.common.wsgi.Resource.__call__ does (webob errors as they are, after translate_exception;
UnicodeDecodeError 400; anything else webob's bare 500).

The answer is {"ok": true, "changes": [...]} with each change's op, its path as a list of tokens,
whether it has a value and the value (see _canon), or {"ok": false, "status": ..., "explanation":
..., "detail": ..., "exception": <Python class name>}.

Values are checked against the image schema by Glance's deserializer (_validate_change). The
reading above is made with a schema that accepts every value (what the body says, whatever its
values); "schema" is [status, explanation] of what Glance itself answers for the same body, with its
image schema as glance-api builds it (get_schema with the custom properties of schema-image.json),
when that differs: Glance's whole answer is "schema" when present, else the reading.

With --unicode it writes Python's character tables instead (str.isspace, re's \\s, str.isprintable,
str.isdigit, str.isdecimal and the digits' values), for the suite's copy of them to be checked.

For each location add or remove with a position, "positions" gives what the images controller's
_get_locations_op_pos makes of the token for images holding 0, 1, 2 and 5 locations.

Run with Debian's /usr/bin/python3.
"""
import base64
import json
import sys

from oslo_config import cfg

import glance.common.config  # noqa: F401  (registers the options the images API reads)

cfg.CONF([], project='glance', default_config_files=[])

from glance.api.v2 import images  # noqa: E402
from glance.common import wsgi  # noqa: E402
import webob.exc  # noqa: E402

COUNTS = (0, 1, 2, 5)


class AnyValue(object):
    """A schema that accepts every value: the service behind the suite checks values."""

    def validate(self, obj):
        return None


PERMISSIVE = images.RequestDeserializer(schema=AnyValue())
# As glance.api.v2.router builds the images resource: create_resource(load_custom_properties()).
GLANCE = images.RequestDeserializer(images.get_schema(images.load_custom_properties()))


def _request(content_type, body):
    return wsgi.Request.blank('/v2/images/1b2c3d4e-0000-4000-8000-000000000000',
                              method='PATCH', body=body,
                              content_type=content_type)


def _read(deserializer, content_type, body):
    """RequestDeserializer.update() as glance.common.wsgi.Resource calls it."""
    request = _request(content_type, body)
    try:
        return {'ok': True, 'changes': deserializer.update(request)['changes']}
    except webob.exc.WSGIHTTPException as e:
        e = wsgi.translate_exception(request, e)
        return {'ok': False, 'status': e.code, 'explanation': e.explanation,
                'detail': e.detail or '', 'exception': type(e).__name__}
    except UnicodeDecodeError:
        return {'ok': False, 'status': 400,
                'explanation': 'Error decoding your request. Either the URL or '
                'the request body contained characters that could not be '
                'decoded by Glance', 'detail': '',
                'exception': 'UnicodeDecodeError'}
    except Exception as e:
        bare = webob.exc.HTTPInternalServerError()
        return {'ok': False, 'status': bare.code, 'explanation': bare.explanation,
                'detail': '', 'exception': type(e).__name__}


def _number(v):
    """repr() of the float a JavaScript reader makes of a JSON number."""
    if isinstance(v, int):
        try:
            v = float(v)
        except OverflowError:
            v = float('inf') if v > 0 else float('-inf')
    return {'$n': repr(v)}


def _canon(v):
    """A JSON value that says what `v` is: numbers as {"$n": repr of the float}, objects as
    {"$d": [[key, value], ...]} in Python's order, everything else as itself."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, list):
        return [_canon(x) for x in v]
    if isinstance(v, dict):
        return {'$d': [[k, _canon(x)] for k, x in v.items()]}
    return {'$unknown': repr(type(v))}


def _positions(change):
    path = change['path']
    if path[0] != 'locations' or len(path) != 2 or change['op'] == 'replace':
        return None
    allow_max = change['op'] == 'add'
    out = []
    for count in COUNTS:
        try:
            pos = images.ImagesController._get_locations_op_pos(
                None, path[1], count, allow_max)
            out.append(None if pos is None else str(pos))
        except ValueError as e:
            out.append({'error': type(e).__name__})
    return out


def _answer(result):
    if not result['ok']:
        return result
    changes = []
    for change in result['changes']:
        item = {'op': change['op'], 'path': change['path'],
                'hasValue': 'value' in change}
        if 'value' in change:
            item['value'] = _canon(change['value'])
        positions = _positions(change)
        if positions is not None:
            item['positions'] = positions
        changes.append(item)
    return {'ok': True, 'changes': changes}


def _verdict(result):
    return None if result['ok'] else [result['status'], result['explanation']]


def _ranges(pred):
    out, start = [], None
    for c in range(0x110001):
        yes = c < 0x110000 and pred(chr(c))
        if yes and start is None:
            start = c
        if not yes and start is not None:
            out.append([start, c - 1])
            start = None
    return out


def unicode_tables():
    """Python's own character classes that Glance's reading relies on, as code point ranges."""
    import re
    import unicodedata
    space = re.compile(r'\s')
    return {
        'unidata': unicodedata.unidata_version,
        'isspace': _ranges(str.isspace),
        'reSpace': _ranges(lambda ch: space.match(ch) is not None),
        'notPrintable': _ranges(lambda ch: not ch.isprintable()),
        'isdigit': _ranges(str.isdigit),
        'isdecimal': _ranges(str.isdecimal),
        'decimalValues': [[c, unicodedata.decimal(chr(c))] for c in range(0x110000)
                          if chr(c).isdecimal()],
    }


def main():
    if sys.argv[1:] == ['--unicode']:
        sys.stdout.write(json.dumps(unicode_tables()) + '\n')
        return 0
    limit = sys.getrecursionlimit()
    for line in sys.stdin:
        if not line.strip():
            continue
        query = json.loads(line)
        content_type = query['contentType']
        body = base64.b64decode(query['bodyBase64'])
        # Glance's own recursion limit while it reads, a deep one while we write the answer.
        sys.setrecursionlimit(limit)
        permissive = _read(PERMISSIVE, content_type, body)
        glance = _read(GLANCE, content_type, body)
        sys.setrecursionlimit(max(limit, 20000))
        answer = _answer(permissive)
        if 'id' in query:
            answer['id'] = query['id']
        if _verdict(glance) != _verdict(permissive):
            answer['schema'] = _verdict(glance)
        sys.stdout.write(json.dumps(answer, ensure_ascii=True, allow_nan=False) + '\n')
        sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
