"""Copy Debian's Glance into a folder and take out the status checks Ocata added to location changes.

    /usr/bin/python3 test/glance/without_location_checks.py DEST

makes DEST/glance, a copy of /usr/lib/python3/dist-packages/glance in which the images
controller (glance/api/v2/images.py) no longer refuses a location change for the image's status:

* ``_do_replace_locations``: 409 unless the image is active or queued,
* ``_do_add_locations``: 409 unless the image is active or queued,
* ``_do_remove_locations``: 409 unless the image is active.

These are the only status checks on a PATCH's location changes: glance/location.py (the store proxy that
checks URLs, duplicates and 'Original locations is not empty') and glance/domain have none.
Everything else is Glance's own code, untouched: with DEST first in PYTHONPATH, glance-api is
Glance 25.1 as it answered before Ocata, the service the location guard is meant to stand in
front of. Each edit must match Glance's text exactly once, and the result must compile and no
longer hold the checks' messages, or this script fails (exit 1) and says which edit did not apply.
"""
import os
import py_compile
import shutil
import sys

SOURCE = '/usr/lib/python3/dist-packages/glance'
CONTROLLER = os.path.join('api', 'v2', 'images.py')

# The three checks, each exactly as Glance 25.1.0 (Debian 2:25.1.0-2+deb12u5) writes it.
CHECKS = {
    '_do_replace_locations': (
        "        if image.status not in ('active', 'queued'):\n"
        "            msg = _(\"It's not allowed to replace locations if image status is \"\n"
        "                    \"%s.\") % image.status\n"
        "            raise webob.exc.HTTPConflict(explanation=msg)\n"
        "\n"
    ),
    '_do_add_locations': (
        "        if image.status not in ('active', 'queued'):\n"
        "            msg = _(\"It's not allowed to add locations if image status is \"\n"
        "                    \"%s.\") % image.status\n"
        "            raise webob.exc.HTTPConflict(explanation=msg)\n"
        "\n"
    ),
    '_do_remove_locations': (
        "        if image.status not in ('active'):\n"
        "            msg = _(\"It's not allowed to remove locations if image status is \"\n"
        "                    \"%s.\") % image.status\n"
        "            raise webob.exc.HTTPConflict(explanation=msg)\n"
        "\n"
    ),
}


def fail(message):
    print('[without location checks] ' + message, file=sys.stderr)
    sys.exit(1)


def method_body(text, name):
    """The text of method `name` of the controller: from its def to the next def."""
    start = text.find('    def %s(' % name)
    if start < 0:
        fail('%s has no method %s' % (CONTROLLER, name))
    end = text.find('\n    def ', start + 1)
    return start, (len(text) if end < 0 else end)


def main():
    if len(sys.argv) != 2 or not os.path.isabs(sys.argv[1]):
        fail('usage: without_location_checks.py DEST (an absolute path)')
    dest = os.path.join(sys.argv[1], 'glance')
    if not os.path.isdir(SOURCE):
        fail('%s is missing (Debian package python3-glance)' % SOURCE)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    # Modification times kept: the copy's bytecode stays valid for every file not edited.
    shutil.copytree(SOURCE, dest, symlinks=True)

    path = os.path.join(dest, CONTROLLER)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for name, check in CHECKS.items():
        start, end = method_body(text, name)
        body = text[start:end]
        if body.count(check) != 1:
            fail('the status check of %s is not in %s as expected (found %d times): not the Glance '
                 'this script was written for' % (name, SOURCE, body.count(check)))
        text = text[:start] + body.replace(check, '', 1) + text[end:]
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)

    # Verified: no status check left, and the controller still compiles.
    for phrase in ("locations if image status is", "image.status not in ('active'"):
        if phrase in text:
            fail('%s still holds %r after the edit' % (path, phrase))
    try:
        py_compile.compile(path, doraise=True)
    except py_compile.PyCompileError as e:
        fail('the edited %s does not compile: %s' % (path, e))
    print(dest)


if __name__ == '__main__':
    main()
