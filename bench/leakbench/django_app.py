"""Every case on Django (one file, settings in code), plus a leak in django.dispatch's signals."""
from __future__ import annotations

from typing import Any, Callable

import cases
import django
from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="leakbench", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                   MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={})
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.dispatch import Signal  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def _view(fn: Callable[[], str]) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(fn())

    return view


order_placed = Signal()


def signal_django() -> str:
    """A receiver connected per request, strongly: the Signal keeps every one."""
    def on_order(sender: Any, **kwargs: Any) -> None:
        return None

    order_placed.connect(on_order, weak=False)  # LEAK
    return "ok"


urlpatterns = [path(name, _view(getattr(cases, name))) for name in cases.CASES]
urlpatterns.append(path("signal_django", _view(signal_django)))
application = get_wsgi_application()
