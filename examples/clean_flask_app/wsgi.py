"""The WSGI entry point: ``gunicorn wsgi:app`` or ``memprobe check wsgi.py:app --run``."""
from __future__ import annotations

from notes import create_app

app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
