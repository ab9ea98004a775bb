"""An OCI distribution-spec v1.1 registry server (`dockyard registry serve`).

    names.py      repository name, tag and digest grammar; digest algorithms
    errors.py     the spec's error codes and their JSON bodies
    manifests.py  pure manifest checks: media types, referenced descriptors, subject, referrers
    storage.py    the filesystem layout: shared content-addressed blobs, per-repository links,
                  upload staging, tags, referrers; every write is temp + rename
    gc.py         mark and sweep of unreferenced blobs, safe beside a serving registry
    auth.py       htpasswd (bcrypt) basic auth, HMAC-signed bearer tokens and their challenges
    server.py     the aiohttp application and its routes

It is its own package, imported only by the `dockyard registry` command: it never touches the
engine, and the engine never imports it.
"""
