"""``backend.http.asgi:app``: the app built from the environment, for uvicorn."""

from backend.http.app import create_app

app = create_app()
