"""``backend.http.asgi:app``: the app built from the environment, for uvicorn. It also opens
the site origin's listener (``SITE_PORT``, 0 for none) for the app's HTTP actions."""

from backend.http.app import create_app

app = create_app(serve_site=True)
