"""Django REST framework CRUD app: an items API over SQLite through Django's own ORM.

    python frameworks/crud_django.py --port 8080 [--db FILE]

Routes: ``GET /`` (hello), ``POST /echo``, ``GET /items/`` (all), ``POST /items/``,
``GET|PUT|DELETE /items/<id>``, with DRF's generic views and a ``ModelSerializer``. Served by
runserver's threaded server (as ``hello_django.py``); under gunicorn: ``crud_django:create_app()``
with ``MEMPROBE_CRUD_DB`` set.
"""
from __future__ import annotations

from typing import Any, Callable

import _crud
from _common import HELLO, exit_on_sigterm

VARIANTS = ("django-orm",)

#: Filled by :func:`create_app` (Django reads ``ROOT_URLCONF``'s ``urlpatterns``).
urlpatterns: list[Any] = []


def create_app() -> Callable[..., Any]:
    """Configure Django over the database the environment names; the WSGI application."""
    import django
    from django.conf import settings

    path, _ = _crud.settings(VARIANTS[0])
    settings.configure(
        DEBUG=False,
        SECRET_KEY="memprobe-crud-not-secret",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["rest_framework"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": path,
                               "OPTIONS": {"timeout": _crud.BUSY_TIMEOUT_S}}},
        USE_TZ=True,
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            # Plain JSON, no browsable API: the study's clients asked for JSON.
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        },
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "loggers": {"django.server": {"level": "ERROR"}}},
    )
    django.setup()

    from django.core.wsgi import get_wsgi_application
    from django.db import models
    from django.http import HttpResponse
    from django.urls import path as route
    from rest_framework import generics, serializers
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Item(models.Model):
        name = models.CharField(max_length=100)
        description = models.CharField(max_length=500, default="", blank=True)
        price = models.FloatField()

        class Meta:
            app_label = "crud"
            db_table = "items"
            managed = False  # the table is seeded by _crud.seed, shared with the other apps

    class ItemSerializer(serializers.ModelSerializer):
        class Meta:
            model = Item
            fields = ["id", "name", "description", "price"]

    class ItemList(generics.ListCreateAPIView):
        queryset = Item.objects.order_by("id")
        serializer_class = ItemSerializer

    class ItemDetail(generics.RetrieveUpdateDestroyAPIView):
        queryset = Item.objects.all()
        serializer_class = ItemSerializer

    class EchoView(APIView):
        def post(self, request: Any) -> Response:
            return Response(request.data)

    def hello(request: Any) -> HttpResponse:
        return HttpResponse(HELLO, content_type="text/plain")

    urlpatterns[:] = [
        route("", hello),
        route("echo", EchoView.as_view()),
        route("items/", ItemList.as_view()),
        route("items/<int:pk>", ItemDetail.as_view()),
    ]
    return get_wsgi_application()


def main() -> None:
    """Parse the command line, seed a database unless given one, serve until SIGTERM."""
    args = _crud.parse_args("Django", __doc__.splitlines()[0], VARIANTS)
    application = create_app()
    from django.core.servers.basehttp import run

    exit_on_sigterm()
    run(args.host, args.port, application, threading=True)


if __name__ == "__main__":
    main()
