"""Every rule ``memprobe check`` knows: id, slug, title, why it costs memory, and the fix.

Ids are stable (documented in docs/check-rules.md): MP1xx are static rules over the app's source,
MP2xx come from ``--run`` (what only a measurement shows), MP9xx are the Flask memory tips that
source code cannot prove, shown as advice.
"""
from __future__ import annotations

from memprobe.check.model import Rule, Severity

FAIL, WARN, INFO = Severity.FAIL, Severity.WARN, Severity.INFO

STATIC_RULES: tuple[Rule, ...] = (
    Rule(
        "MP101", "global-growth", "Module-level container written from a request handler", FAIL,
        "A list, dict or set bound at module level lives as long as the worker process. Appending "
        "to it, or adding keys that come from requests, keeps every request's data alive: memory "
        "grows with traffic until the worker is killed.",
        "Keep per-request data in local variables or `flask.g`; put shared state in a bounded "
        "structure (`collections.deque(maxlen=N)`, an LRU with a maxsize, Flask-Caching with a "
        "threshold and timeout) or in an external store (Redis, the database).",
    ),
    Rule(
        "MP102", "unbounded-lru-cache", "Unbounded functools cache keyed by request data", FAIL,
        "`lru_cache(maxsize=None)` and `functools.cache` never evict. Called with request data "
        "(query strings, form fields, view arguments), every distinct value adds an entry that "
        "stays for the life of the process.",
        "Give the cache a bound: `@lru_cache(maxsize=256)`, or use Flask-Caching with a "
        "`CACHE_THRESHOLD` and a timeout.",
    ),
    Rule(
        "MP103", "connection-per-request", "Database connection opened per request without close, "
        "teardown or pool", WARN,
        "A connection opened in a handler and never closed keeps its buffers, statement cache and "
        "socket or file handle until garbage collection finds it; an engine created per request "
        "builds a whole new pool each time.",
        "Open the connection once per request through `flask.g` and close it in a "
        "`@app.teardown_appcontext` function, use `with closing(...)`, or use a pool created once "
        "at start-up (SQLAlchemy engine, psycopg pool).",
    ),
    Rule(
        "MP104", "cache-unbounded", "Flask-Caching configured without a bound or with entries that "
        "never expire", WARN,
        "A timeout of 0 means entries never expire, and a huge `CACHE_THRESHOLD` means the "
        "in-process cache is never pruned: the cache grows with every distinct key it sees.",
        "Set `CACHE_DEFAULT_TIMEOUT` (seconds, not 0) and a modest `CACHE_THRESHOLD`; pass a "
        "positive `timeout=` to `@cache.cached`, `@cache.memoize` and `cache.set`.",
        flask_only=True,
    ),
    Rule(
        "MP105", "per-process-cache", "Per-process cache type where several workers run", WARN,
        "`SimpleCache` lives inside each worker process: with N workers the app keeps N copies of "
        "every cached value and none of them share hits.",
        "Use a shared backend (`RedisCache`, `MemcachedCache`) when running several workers, or "
        "keep the per-process cache small with a low `CACHE_THRESHOLD`.",
        flask_only=True,
    ),
    Rule(
        "MP106", "whole-read", "Whole file, upload or query result read into memory in a handler",
        WARN,
        "`.read()`, `.fetchall()` and `list(query)` load everything at once: the request's peak "
        "memory is the size of the data, and the allocator rarely gives that memory back to the "
        "operating system.",
        "Stream: iterate the cursor or use `fetchmany(n)`, add a `LIMIT`, read files in chunks, "
        "save uploads with `file.save()` or `shutil.copyfileobj`, return a generator wrapped in "
        "`stream_with_context`.",
    ),
    Rule(
        "MP107", "import-time-load", "Large data loaded at import time", WARN,
        "Data loaded at module level is loaded in every worker (and in every process that imports "
        "the module), before the first request, and stays for the life of the process even when "
        "only one route needs it.",
        "Load lazily, on first use, behind a function (with a bounded cache if needed), or memory-"
        "map the file; keep large datasets in a database.",
    ),
    Rule(
        "MP108", "logging-per-request", "Logging handler, filter or logger created per request",
        FAIL,
        "`addHandler` and `addFilter` append to the logger for good, and `logging.getLogger(name)` "
        "keeps every named logger forever: doing it per request grows memory (and duplicates log "
        "lines) with every request.",
        "Configure logging once at start-up (in the app factory or `logging.config.dictConfig`); "
        "use a fixed logger name and pass request data as log arguments or `extra=`.",
    ),
    Rule(
        "MP109", "http-session-per-request", "HTTP client session created per request and not "
        "closed", WARN,
        "A `requests.Session`, `httpx.Client` or `aiohttp.ClientSession` owns a connection pool "
        "with sockets and buffers. Created per request and not closed, each one lingers until "
        "garbage collection, and no connection is ever reused.",
        "Create one client at start-up and reuse it, or use it in a `with` block so it is closed "
        "when the request ends.",
    ),
    Rule(
        "MP110", "debug-mode", "`debug=True` left on", WARN,
        "The Werkzeug debugger keeps the frames and local variables of every traceback it shows "
        "so they can be inspected later: each error makes the process bigger, for good. It is "
        "also a remote shell.",
        "Turn debug on from the environment while developing (`flask --app app run --debug`, "
        "`FLASK_DEBUG=1`), never in code that ships.",
        flask_only=True,
    ),
    Rule(
        "MP111", "thread-per-request", "Thread or process started per request", FAIL,
        "Each thread reserves a stack (8 MiB of address space on Linux) and keeps its arguments "
        "alive until it ends; threads started per request pile up under load.",
        "Submit work to one executor created at start-up (`ThreadPoolExecutor(max_workers=N)`) or "
        "to a task queue (Celery, RQ).",
    ),
    Rule(
        "MP112", "lru-cache-method", "`lru_cache` on a method keeps every instance alive", WARN,
        "The cache is stored on the function, keyed by `self`: every instance the method is "
        "called on stays referenced by the cache, with everything it holds.",
        "Cache a module-level function of the values you need, use `functools.cached_property`, or "
        "keep a per-instance cache attribute.",
    ),
)

RUNTIME_RULES: tuple[Rule, ...] = (
    Rule(
        "MP201", "measured-leak", "Measured leak with no static explanation", FAIL,
        "`memprobe hunt` measured memory that stays behind after every request, but no static "
        "rule points at the code that holds it: the leak is somewhere the rules do not look "
        "(a dependency, C code, a class attribute, a closure).",
        "Read the allocation sites and holder chains in the evidence; `memprobe hunt` prints them "
        "in full.",
    ),
    Rule(
        "MP202", "measured-bounded-growth", "Memory grew while measured, then stopped", INFO,
        "Growth that stops is usually a cache filling up or lazy initialisation: not a leak, but "
        "it is memory each worker pays.",
        "Check that the bound is the one you meant (cache sizes, pools).",
    ),
)

ADVICE_RULES: tuple[Rule, ...] = (
    Rule(
        "MP901", "profile-and-monitor", "Profile, and monitor memory in production", INFO,
        "Static rules find known patterns; only a measurement finds the rest. A per-worker RSS "
        "graph shows a leak long before the out-of-memory killer does.",
        "Run `memprobe hunt app.py:app` (or `memprobe check --run`) before releases, and watch "
        "per-worker RSS/USS in production.",
        advice_only=True,
    ),
    Rule(
        "MP902", "worker-restarts", "Restart workers periodically as a guard", INFO,
        "Some growth cannot be fixed quickly (fragmentation, a leaking dependency). Restarting "
        "each worker after N requests caps what any leak can cost.",
        "gunicorn `--max-requests 1000 --max-requests-jitter 100` (uWSGI `max-requests`); keep "
        "fixing leaks, this is a guard, not a cure.",
        advice_only=True,
    ),
    Rule(
        "MP903", "generators-for-large-data", "Use generators instead of lists for large data", INFO,
        "A list holds every element at once; a generator holds one. Responses built from large "
        "lists cost their full size per concurrent request.",
        "Yield rows and wrap the generator in `stream_with_context` for large responses.",
        advice_only=True,
    ),
    Rule(
        "MP904", "lazy-loading", "Load lazily instead of at import", INFO,
        "What is loaded at import is paid by every worker, whether a request needs it or not.",
        "Import heavy modules and load models or datasets inside the function that needs them.",
        advice_only=True,
    ),
    Rule(
        "MP905", "efficient-libraries", "Prefer memory-efficient data structures and libraries",
        INFO,
        "A Python list of a million floats costs ~32 MB; a numpy array ~8 MB. Objects with "
        "`__slots__` are several times smaller than ones with a `__dict__`.",
        "Use arrays (`array`, numpy) for numbers, `__slots__` or tuples for many small records, "
        "iterators from your database driver, and streaming parsers for large JSON/CSV.",
        advice_only=True,
    ),
    Rule(
        "MP906", "bounded-caching", "Cache with bounds and timeouts", INFO,
        "A cache trades memory for time; without a bound and an expiry it trades all of it.",
        "Flask-Caching with `CACHE_THRESHOLD` and `CACHE_DEFAULT_TIMEOUT`, or a shared backend "
        "(Redis) when several workers run.",
        advice_only=True,
    ),
)

ALL_RULES: tuple[Rule, ...] = STATIC_RULES + RUNTIME_RULES + ADVICE_RULES
RULES: dict[str, Rule] = {r.id: r for r in ALL_RULES}
_BY_SLUG: dict[str, Rule] = {r.slug: r for r in ALL_RULES}


def lookup(name: str) -> Rule | None:
    """The rule called ``name``: an id (``MP101``, any case) or a slug (``global-growth``)."""
    return RULES.get(name.strip().upper()) or _BY_SLUG.get(name.strip().lower())
