"""The operators' console: a web page at ``/admin`` on every edge (admin role).

It lives outside the product packages (``delivery``, ``consumers``, ``api``), as the
benchmarks and the clients do: it imports ``api`` and ``delivery``, and none of them
imports it. It plugs in through two entry points of ``pyproject.toml``:
``courier.web`` (:func:`console.web.install`: the page and its sign-in routes) and
``courier.commands`` (``courier admin``: a one-time sign-in link).

The page is plain files in ``static/`` (ES modules, no build step), with its few
front-end libraries vendored into ``static/vendor/`` from the committed
``package-lock.json`` by ``vendor.sh``.
"""
