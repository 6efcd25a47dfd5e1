"""Django REST framework hello-world: a one-file Django project served by runserver's server.

    python frameworks/hello_django.py --port 8080 [--host 127.0.0.1]

The server is ``django.core.servers.basehttp.run``, the function ``manage.py runserver`` calls:
Django's threaded wsgiref-based server, HTTP/1.1 with keep-alive. It is called directly rather
than through the management command so that runserver's autoreloader (which would serve from a
second process, not the one memprobe measures) and its console banner stay out.
"""
from __future__ import annotations

from typing import Any

import django
from django.conf import settings

from _common import HELLO, exit_on_sigterm, parse_args

settings.configure(
    DEBUG=False,
    SECRET_KEY="memprobe-hello-world-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["rest_framework"],
    # CommonMiddleware sets Content-Length, without which Django's server closes every
    # connection (no keep-alive); every startproject settings file has it.
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={},
    USE_TZ=True,
    REST_FRAMEWORK={
        # No auth, so DRF needs neither django.contrib.auth nor a database.
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
    },
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        # runserver's server logs every request on "django.server": we measure the
        # framework, not its console. Errors of the app still go to stderr.
        "loggers": {"django.server": {"level": "ERROR"}},
    },
)
django.setup()

from django.urls import path  # noqa: E402  (needs the settings above)
from django.utils.encoding import smart_str  # noqa: E402
from rest_framework.parsers import JSONParser  # noqa: E402
from rest_framework.renderers import BaseRenderer, JSONRenderer  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class PlainTextRenderer(BaseRenderer):
    """Render a string as text/plain (the renderer DRF's documentation shows)."""

    media_type = "text/plain"
    format = "txt"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> str:
        """The data as text in the renderer's charset."""
        return smart_str(data, encoding=self.charset)


class HelloView(APIView):
    """``GET /``."""

    renderer_classes = [PlainTextRenderer]

    def get(self, request: Request) -> Response:
        """Answer with the plain-text greeting."""
        return Response(HELLO)


class EchoView(APIView):
    """``POST /echo``."""

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def post(self, request: Request) -> Response:
        """Answer with the JSON body received."""
        return Response(request.data)


urlpatterns = [path("", HelloView.as_view()), path("echo", EchoView.as_view())]


def wsgi_app() -> Any:
    """The application for a WSGI server (gunicorn)."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("Django", __doc__.splitlines()[0])
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    exit_on_sigterm()
    run(args.host, args.port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
