"""`eventfwd web`: the browser console for dead letters and the fleet.

`create_app(settings)` returns a plain WSGI application: serve it with `eventfwd web`, or mount
it in a Flask, Django or FastAPI app (under a prefix, behind that app's own login). Pages are
rendered on the server; the little CSS there is ships in the package.
"""

from __future__ import annotations

from eventfwd.web.app import Console, create_app

__all__ = ["Console", "create_app"]
