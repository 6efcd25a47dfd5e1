"""The agent in a process memprobe did not start as its own child: injected at interpreter start
(for every Python process of ``hunt --cmd`` and ``memprobe run``, by the bootstrap's
``sitecustomize`` on ``PYTHONPATH`` and by a gated ``.pth`` in site-packages, whichever comes
first: :mod:`memprobe.agent.channel` says why both) or into a process that is already running
(attach).

:func:`start` is the one entry for both: it opens the agent's control socket,
``CHANNEL/<pid>.sock``, in a directory memprobe created 0700, and answers there with the same
:class:`~memprobe.agent.control.Agent` a child memprobe starts has. memprobe finds the agents by
listing the directory.

:func:`bootstrap` decides where the agent starts, so that no thread is started in a process
that is going to fork, and none in helpers that serve nothing:

* gunicorn: the master (arbiter) never gets an agent; each worker starts one when it loads the
  app (``Worker.load_wsgi``, patched on import), right after its fork, respawns included;
* uvicorn: each process that loads the app (``Config.load``: a single-process server, or each
  worker of ``--workers``, which multiprocessing *spawns*, so they import this bootstrap
  themselves) starts one; the supervisor and multiprocessing's resource tracker do not;
* any other Python program: the agent starts at once, and ``os.register_at_fork`` gives every
  child it forks an agent of its own (a forked child inherits neither the thread nor the socket);
* a process that re-executes itself (``os.exec*``) removes its socket first; the new image
  arms again if it reads the bootstrap or the ``.pth`` (:mod:`memprobe.agent.channel`).

Requests are counted inside the process by wrapping the app the server loaded (the WSGI callable
gunicorn calls, the ASGI app uvicorn calls): it works for every gunicorn worker class (sync,
gthread, gevent) and every uvicorn protocol alike, which hooking the servers' request loops
would not. Tornado serves its own HTTP, with no such app: there ``RequestHandler._execute``,
which runs each request's handler to its finish, is wrapped (as ``tornado.web`` is imported, or
on attach once an ``Application`` exists). A process whose app was not wrapped (attached to, or
a server memprobe does not know) answers ``served: null``.

gunicorn 25.1+ opens a control socket at one path per user (``~/.gunicorn/gunicorn.ctl``), which a
gunicorn started for a hunt would take from the user's own running one: its default is moved
into the channel directory (removed with it). A ``--control-socket`` the command gives wins.
"""
from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import importlib.util
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

from memprobe.agent import control
from memprobe.agent.watch_trace import asgi_handler, tornado_handler
from memprobe.agent.watching import Closing, Recorder, asgi_route, stop_recording, tornado_route, wsgi_route

if TYPE_CHECKING:
    from memprobe.capture.record import CaptureBuffer, Pending

#: The channel directory, in the environment of a command memprobe starts.
ENV_CHANNEL = "MEMPROBE_CHANNEL"
#: Traceback depth of the attribution round (``--frames``).
ENV_FRAMES = "MEMPROBE_FRAMES"
#: Programs whose first process is a launcher (it forks or spawns the workers).
LAUNCHERS = ("gunicorn", "uvicorn")
#: ``python -c`` helpers of multiprocessing that serve nothing.
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver",
            "multiprocessing.semaphore_tracker")

__all__ = ["ENV_CHANNEL", "ENV_FRAMES", "adopt", "bootstrap", "count_loaded", "served", "socket_path", "start",
           "stop", "uncount"]


class Served:
    """Requests this process's app served, counted as each one ends (thread-safe)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        """One more request served."""
        with self._lock:
            self.count += 1


class _Process:
    """What the agent says of this process's app (``hello``): set when the server loads it."""

    def __init__(self) -> None:
        self.app: Any = None
        self.kind: str | None = None
        self.served = Served()
        #: whether :attr:`served` counts (the app was wrapped)
        self.counting = False
        #: what ``memprobe watch`` records while it watches (``watch_start`` to ``watch_stop``)
        self.watching: Recorder | None = None

    @property
    def framework(self) -> str | None:
        """The installed package the app's class comes from (``flask``, ``fastapi``...)."""
        if self.app is None:
            return None
        module = sys.modules.get(getattr(type(self.app), "__module__", "") or "")
        filename = getattr(module, "__file__", None) or ""
        if module is None or "-packages" not in filename:
            return None
        return module.__name__.split(".")[0]


_process = _Process()


class _Running:
    """The agent of one pid: its listening socket, its path, the agent and its accept thread."""

    def __init__(self, pid: int, sock: socket.socket, path: str, agent: control.Agent,
                 thread: threading.Thread) -> None:
        self.pid, self.sock, self.path, self.agent, self.thread = pid, sock, path, agent, thread


#: the running agent of *this* pid
_running: _Running | None = None
_lock = threading.Lock()
_armed = False


def socket_path(channel_dir: str | os.PathLike[str], pid: int | None = None) -> str:
    """Where the agent of ``pid`` (this process) listens: ``CHANNEL/<pid>.sock``."""
    return os.path.join(os.fspath(channel_dir), f"{pid or os.getpid()}.sock")


def served() -> int | None:
    """Requests this process's app served so far (None when they are not counted here)."""
    return _process.served.count if _process.counting else None


def start(channel_dir: str | os.PathLike[str], frames: int | None = None) -> str:
    """Start the agent in this process (once per pid) and return its socket's path.

    ``channel_dir`` must be a directory of this user's that nobody else can enter (mode 0700):
    memprobe creates it. ``frames`` is the attribution round's traceback depth (default
    ``$MEMPROBE_FRAMES`` or 25). Safe to call from any thread of a running process; raises
    OSError/PermissionError when the socket cannot be opened.
    """
    global _running
    with _lock:
        pid = os.getpid()
        if _running is not None and _running.pid == pid:
            return _running.path
        _running = None
        directory = os.fspath(channel_dir)
        _check_private(directory)
        path = socket_path(directory, pid)
        try:
            os.unlink(path)  # a dead process's socket that had this pid
        except FileNotFoundError:
            pass
        sock = control.listen(path)
        depth = frames or int(os.environ.get(ENV_FRAMES) or 25)
        agent = control.Agent(_process, depth, served=served)
        _running = _Running(pid, sock, path, agent, control.serve(sock, agent))
        return path


def adopt(app: Any, kind: str | None) -> None:
    """Name the app of a process the agent was attached to (its requests are not counted)."""
    if not _process.counting:
        _process.app, _process.kind = app, kind


def stop(timeout: float = 10.0) -> bool:
    """Stop this process's agent: no more connections, its socket removed, tracing stopped, its
    threads ended (those of connections memprobe has closed end by themselves). False when no
    agent ran here."""
    global _running
    with _lock:
        running, _running = _running, None
    if running is None or running.pid != os.getpid():
        return False
    try:
        running.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(): close() alone does not
    except OSError:
        pass
    running.sock.close()
    try:
        os.unlink(running.path)
    except FileNotFoundError:
        pass
    running.thread.join(timeout)
    with running.agent.lock:  # a command still running finishes first
        running.agent.attributor.tracing.stop()
        stop_recording(_process)
    for thread in threading.enumerate():
        if thread.name == "memprobe-control" and thread is not threading.current_thread():
            thread.join(timeout)
    return True


def _check_private(directory: str) -> None:
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{directory} is not a private directory of this user (mode 0700)")


# -- bootstrap: which process gets an agent, and when ------------------------------------------


def bootstrap() -> None:
    """Called by the bootstrap's ``sitecustomize`` in every Python process of the command: arm
    the agent where it belongs (see the module's docstring). Does nothing without
    ``$MEMPROBE_CHANNEL``."""
    global _armed
    channel = os.environ.get(ENV_CHANNEL)
    if not channel or _armed:
        return
    _armed = True
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if _is_helper(argv):
        return
    os.register_at_fork(after_in_child=_after_fork)
    _release_before_exec()
    _PostImport.install({"gunicorn.workers.base": _patch_gunicorn, "gunicorn.config": _patch_gunicorn_config,
                         "uvicorn.config": _patch_uvicorn, "tornado.web": _patch_tornado})
    if not _is_launcher(argv) and "--multiprocessing-fork" not in argv:
        start(channel)


def _is_helper(argv: list[str]) -> bool:
    code = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else ""
    return any(name in code for name in HELPERS)


def _is_launcher(argv: list[str]) -> bool:
    """Whether the process is gunicorn's or uvicorn's command (``gunicorn ...``, ``python -m
    uvicorn ...``): its workers, not itself, serve."""
    args = argv[1:]
    if "-m" in args[:-1]:
        return args[args.index("-m") + 1].split(".")[0] in LAUNCHERS
    script = next((a for a in args if not a.startswith("-")), "")
    names = {os.path.basename(a) for a in (argv[0], script) if a}
    return any(n == name or n.startswith(name + "-") for n in names for name in LAUNCHERS)


def _after_fork() -> None:
    """In a forked child: the parent's agent (socket, threads, count) is not this process's."""
    global _running
    inherited, _running = _running, None
    _process.served = Served()
    stop_recording(_process)  # the parent's windows are not this process's
    if inherited is None:
        return
    try:
        inherited.sock.close()  # the parent's listening socket; its path stays the parent's
    except OSError:
        pass
    channel = os.environ.get(ENV_CHANNEL)
    if channel:
        _start_quietly(channel)


def _release_before_exec() -> None:
    """Make ``os.execv`` and ``os.execve`` (and so every ``os.exec*``) remove this process's
    agent socket first: the new image keeps the pid, so a socket left behind would name an
    agent that no longer listens (until the new image, if it is Python and armed, opens its
    own at the same path). If the exec fails, the agent listens again."""
    for name in ("execv", "execve"):
        original = getattr(os, name)
        if getattr(original, "_memprobe", False):
            continue

        def patched(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            global _running
            running, _running = _running, None
            if running is None or running.pid != os.getpid():
                return _original(*args, **kwargs)
            running.sock.close()
            try:
                os.unlink(running.path)
            except FileNotFoundError:
                pass
            try:
                return _original(*args, **kwargs)
            except BaseException:
                _start_quietly(os.path.dirname(running.path))
                raise

        patched._memprobe = True  # type: ignore[attr-defined]
        setattr(os, name, patched)


def _serving(app: Any, kind: str) -> None:
    """The server loaded ``app`` in this process: it is a worker; its agent starts now."""
    _process.app, _process.kind, _process.counting = app, kind, True
    channel = os.environ.get(ENV_CHANNEL)
    if channel:
        _start_quietly(channel)


def _start_quietly(channel: str) -> None:
    try:
        start(channel)
        atexit.register(stop)
    except OSError as err:
        print(f"memprobe: agent not started in pid {os.getpid()}: {err}", file=sys.stderr)


class CountingWSGI:
    """The WSGI app as gunicorn loaded it, counting each call in this process; while a
    :class:`~memprobe.agent.watching.Recorder` watches (``recorder()`` is not None), also each
    request's route and its end, when the server closes the body."""

    def __init__(self, app: Any, counter: Callable[[], Served],
                 recorder: Callable[[], Recorder | None] | None = None) -> None:
        self.app = app
        self._counter = counter
        self._recorder = recorder or _recording

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        recorder = self._recorder()
        if recorder is None:
            try:
                return self.app(environ, start_response)
            finally:
                self._counter().add()
        token = recorder.begin()
        capture = recorder.capture
        pending = None
        if capture is not None and capture.wants(None, environ.get("REQUEST_METHOD")):
            pending, start_response = capture.wsgi(environ, start_response)
        try:
            body: Iterable[bytes] = self.app(environ, start_response)
        except BaseException:
            self._counter().add()
            _end_wsgi(recorder, token, environ, capture, pending)
            raise
        self._counter().add()
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):  # sent by sendfile: not wrapped
            _end_wsgi(recorder, token, environ, capture, pending)
            return body
        return Closing(body, recorder, token, environ,
                       (capture, pending) if capture is not None and pending is not None else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


class CountingASGI:
    """The ASGI app as uvicorn loaded it, counting each HTTP request in this process; while a
    :class:`~memprobe.agent.watching.Recorder` watches, also each request's route and its end."""

    def __init__(self, app: Any, counter: Callable[[], Served],
                 recorder: Callable[[], Recorder | None] | None = None) -> None:
        self.app = app
        self._counter = counter
        self._recorder = recorder or _recording

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        recorder = self._recorder() if scope.get("type") == "http" else None
        if recorder is None:
            try:
                await self.app(scope, receive, send)
            finally:
                if scope.get("type") == "http":
                    self._counter().add()
            return
        recorder.asynchronous = True
        token = recorder.begin()
        capture = recorder.capture
        pending = None
        if capture is not None and capture.wants(None, scope.get("method")):
            pending, receive, send = capture.asgi(receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            self._counter().add()
            route = asgi_route(scope)
            recorder.end(token, route, partial(asgi_handler, scope) if recorder.trace is not None else None)
            if capture is not None and pending is not None:
                capture.finish_asgi(pending, scope, route)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def counting_tornado(original: Callable[..., Any]) -> Callable[..., Any]:
    """Tornado's ``RequestHandler._execute`` counting each request in this process; while a
    :class:`~memprobe.agent.watching.Recorder` watches, also each request's route (the handler's
    URL pattern) and its end. Tornado serves its own HTTP (no WSGI or ASGI app to wrap): a
    request's handler is made and run by ``_execute``, which returns once the response is
    finished."""

    async def _execute(self: Any, transforms: Any, *args: Any, **kwargs: Any) -> None:
        recorder = _recording()
        if _process.app is None:
            _process.app = self.application
        if recorder is None:
            try:
                await original(self, transforms, *args, **kwargs)
            finally:
                _counter().add()
            return
        recorder.asynchronous = True
        token = recorder.begin()
        try:
            await original(self, transforms, *args, **kwargs)
        finally:
            _counter().add()
            recorder.end(token, tornado_route(self),
                         partial(tornado_handler, self) if recorder.trace is not None else None)

    _execute._memprobe = True  # type: ignore[attr-defined]
    return _execute


def _end_wsgi(recorder: Recorder, token: Any, environ: dict[str, Any], capture: CaptureBuffer | None,
              pending: Pending | None) -> None:
    route = wsgi_route(environ)
    recorder.end(token, route)
    if capture is not None and pending is not None:
        capture.finish_wsgi(pending, environ, route)


def _counter() -> Served:
    return _process.served


def _recording() -> Recorder | None:
    return _process.watching


def _run_after(cls: Any, name: str, after: Callable[[Any], None]) -> None:
    """Make ``cls.name`` call ``after(self)`` once the original has run (once, however often
    the module is imported)."""
    original = getattr(cls, name)
    if getattr(original, "_memprobe", False):
        return

    def patched(self: Any) -> None:
        original(self)
        after(self)

    patched._memprobe = True  # type: ignore[attr-defined]
    setattr(cls, name, patched)


def _count_wsgi(worker: Any) -> None:
    if worker.wsgi is not None and not isinstance(worker.wsgi, CountingWSGI):
        app = worker.wsgi
        worker.wsgi = CountingWSGI(app, _counter)
        _serving(app, "wsgi")


def _count_asgi(config: Any) -> None:
    if not isinstance(config.loaded_app, CountingASGI):
        app = _unwrap(config.loaded_app)
        config.loaded_app = CountingASGI(config.loaded_app, _counter)
        _serving(app, "asgi")


#: (object, attribute, what it was) for every app wrapped by :func:`count_loaded`
_wrapped: list[tuple[Any, str, Any]] = []


def count_loaded() -> bool:
    """In a process the agent was attached to: find the app a gunicorn worker or a uvicorn
    server already loaded (among the live objects: the worker, the config) and count its
    requests from now on. Whether it found one; :func:`uncount` puts the app back."""
    import gc

    if _process.counting:
        return True
    worker_cls = getattr(sys.modules.get("gunicorn.workers.base"), "Worker", None)
    config_cls = getattr(sys.modules.get("uvicorn.config"), "Config", None)
    tornado_app = getattr(sys.modules.get("tornado.web"), "Application", None)
    if worker_cls is None and config_cls is None:
        found = [o for o in gc.get_objects() if isinstance(o, tornado_app)] if tornado_app is not None else []
        if not found:
            return False
        _patch_tornado(sys.modules["tornado.web"])
        _process.app = found[0]
        return True
    for obj in gc.get_objects():
        if worker_cls is not None and isinstance(obj, worker_cls) and getattr(obj, "wsgi", None) is not None:
            _wrapped.append((obj, "wsgi", obj.wsgi))
            _count_wsgi(obj)
            return True
        if config_cls is not None and isinstance(obj, config_cls) and getattr(obj, "loaded", False):
            _wrapped.append((obj, "loaded_app", obj.loaded_app))
            _count_asgi(obj)
            return True
    return False


def uncount() -> None:
    """Put back the apps :func:`count_loaded` wrapped; requests are no longer counted."""
    while _wrapped:
        obj, attr, original = _wrapped.pop()
        setattr(obj, attr, original)
    _process.counting = False
    stop_recording(_process)


def _patch_gunicorn(module: ModuleType) -> None:
    _run_after(module.Worker, "load_wsgi", _count_wsgi)


def _patch_gunicorn_config(module: ModuleType) -> None:
    setting, channel = getattr(module, "ControlSocket", None), os.environ.get(ENV_CHANNEL)
    if setting is not None and channel:
        setting.default = os.path.join(channel, "gunicorn.ctl")


def _patch_uvicorn(module: ModuleType) -> None:
    _run_after(module.Config, "load", _count_asgi)


def _patch_tornado(module: ModuleType) -> None:
    """Count the requests of every Tornado handler of this process (undone by :func:`uncount`)."""
    handler = module.RequestHandler
    original = vars(handler)["_execute"]
    if getattr(original, "_memprobe", False):
        return
    handler._execute = counting_tornado(original)
    _wrapped.append((handler, "_execute", original))
    _process.kind, _process.counting = "tornado", True


def _unwrap(app: Any) -> Any:
    """The user's app under uvicorn's own middlewares (proxy headers, ASGI2, WSGI adapters)."""
    for _ in range(8):
        inner = getattr(app, "app", None)
        if inner is None or not type(app).__module__.startswith("uvicorn."):
            break
        app = inner
    return app


class _PostImport(importlib.abc.MetaPathFinder):
    """Runs a hook on a module right after it is first imported (or at once if it already is)."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = hooks
        self._busy: set[str] = set()

    @classmethod
    def install(cls, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        """Watch for ``hooks``' modules; patch those already imported."""
        pending = {}
        for name, hook in hooks.items():
            if name in sys.modules:
                hook(sys.modules[name])
            else:
                pending[name] = hook
        if pending:
            sys.meta_path.insert(0, cls(pending))

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        hook = self.hooks.get(name)
        if hook is None or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, hook: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.hook = hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        try:
            self.hook(module)
        except Exception as err:  # a server version whose shape differs: serve, unmeasured
            print(f"memprobe: cannot hook {module.__name__}: {type(err).__name__}: {err}", file=sys.stderr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)
