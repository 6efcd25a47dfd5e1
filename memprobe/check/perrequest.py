"""Rules about code that runs on every request: handlers and the app functions they call."""
from __future__ import annotations

import ast
import re

from memprobe.check.context import (
    RuleContext,
    calls_in,
    is_constant,
    own_nodes,
    parents,
)
from memprobe.check.facts import Function, ModuleFacts, is_request_data

#: constructors of containers that grow without a bound
_CONTAINER_CALLS = frozenset({"list", "dict", "set", "collections.defaultdict", "collections.OrderedDict",
                              "collections.Counter", "collections.deque"})
_APPENDS = frozenset({"append", "extend", "insert", "appendleft", "extendleft"})
_KEYED_WRITES = frozenset({"add", "update", "setdefault", "__setitem__"})
_REMOVALS = frozenset({"pop", "popitem", "clear", "remove", "popleft", "discard"})

_DB_CONNECT = frozenset({
    "sqlite3.connect", "psycopg2.connect", "psycopg.connect", "pymysql.connect", "MySQLdb.connect",
    "mysql.connector.connect", "cx_Oracle.connect", "oracledb.connect", "pyodbc.connect",
    "pymssql.connect", "asyncpg.connect", "aiosqlite.connect",
})
_POOL_FACTORIES = frozenset({
    "sqlalchemy.create_engine", "sqlalchemy.ext.asyncio.create_async_engine", "pymongo.MongoClient",
    "redis.Redis", "redis.StrictRedis", "redis.from_url", "redis.Redis.from_url",
    "psycopg2.pool.SimpleConnectionPool", "psycopg2.pool.ThreadedConnectionPool",
    "psycopg_pool.ConnectionPool", "asyncpg.create_pool",
})
_HTTP_CLIENTS = frozenset({"requests.Session", "requests.session", "requests.sessions.Session",
                           "httpx.Client", "httpx.AsyncClient", "aiohttp.ClientSession",
                           "urllib3.PoolManager", "urllib3.HTTPConnectionPool"})
_THREADS = frozenset({"threading.Thread", "threading.Timer", "multiprocessing.Process",
                      "_thread.start_new_thread", "_thread.start_new"})
_POOLS = frozenset({"concurrent.futures.ThreadPoolExecutor", "concurrent.futures.ProcessPoolExecutor",
                    "multiprocessing.Pool", "multiprocessing.pool.ThreadPool"})
_LIMIT = re.compile(r"\bLIMIT\b", re.IGNORECASE)


def global_growth(ctx: RuleContext) -> None:
    """MP101: a module-level list/dict/set written from a per-request function."""
    containers = _module_containers(ctx)
    if not containers:
        return
    bounded = _bounded_globals(ctx, containers)
    seen: set[tuple[str, int]] = set()
    for fn in ctx.project.per_request():
        mod = fn.module
        declared_global = {n for node in own_nodes(fn) if isinstance(node, ast.Global) for n in node.names}
        local = _locals(fn) - declared_global

        # Bound as defaults: the closure must see this iteration's module and locals.
        def target_of(expr: ast.AST, mod: ModuleFacts = mod, local: set[str] = local) -> str:
            if isinstance(expr, ast.Name) and expr.id in local:
                return ""
            if isinstance(expr, ast.Name) and expr.id not in mod.aliases:
                name = f"{mod.src.module}.{expr.id}"
            else:
                name = mod.qualified(expr)
            return name if name in containers and name not in bounded else ""

        for node in own_nodes(fn):
            name, how = "", ""
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                method = node.func.attr
                grows = method in _APPENDS or (method in _KEYED_WRITES and not all(
                    is_constant(a) for a in [*node.args, *(k.value for k in node.keywords)]))
                if grows:
                    name, how = target_of(node.func.value), f"`.{method}(...)`"
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Subscript) and not is_constant(target.slice):
                        name, how = target_of(target.value), "a new key"
                    elif isinstance(node, ast.AugAssign) and isinstance(target, ast.Name) \
                            and target.id in declared_global:
                        name, how = target_of(target), "`+=`"
                    if name:
                        break
            line = getattr(node, "lineno", 0)
            if not name or (name, line) in seen:
                continue
            seen.add((name, line))
            short = name.rpartition(".")[2]
            defined = containers[name]
            ctx.report("MP101", mod, node,
                       f"`{short}` ({defined[0]} at module level, {defined[1]}) grows by {how} in "
                       f"{fn.per_request}; nothing removes entries from it",
                       symbol=name, fn=fn)


def _module_containers(ctx: RuleContext) -> dict[str, tuple[str, str]]:
    """qualified name -> (kind, "file:line") of every module-level mutable container."""
    out: dict[str, tuple[str, str]] = {}
    for mod in ctx.project.modules:
        for node in _module_level(mod.src.tree):
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            kind = _container_kind(mod, value)
            if not kind:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    out[f"{mod.src.module}.{target.id}"] = (kind, f"{mod.src.display}:{node.lineno}")
    return out


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                stack.extend(getattr(node, block, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                stack.extend(handler.body)
    return out


def _container_kind(mod: ModuleFacts, value: ast.AST) -> str:
    if isinstance(value, (ast.List, ast.ListComp)):
        return "a list"
    if isinstance(value, (ast.Dict, ast.DictComp)):
        return "a dict"
    if isinstance(value, (ast.Set, ast.SetComp)):
        return "a set"
    if isinstance(value, ast.Call):
        name = mod.call_name(value)
        if name in _CONTAINER_CALLS:
            if name == "collections.deque" and (len(value.args) > 1 or any(k.arg == "maxlen" for k in value.keywords)):
                return ""
            return f"a {name.rpartition('.')[2]}"
    return ""


def _bounded_globals(ctx: RuleContext, containers: dict[str, tuple[str, str]]) -> set[str]:
    """Containers something removes entries from, or rebinds, anywhere in a function."""
    out: set[str] = set()
    for mod in ctx.project.modules:
        for fn in mod.functions:
            for node in ast.walk(fn.node):
                target: ast.AST | None = None
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in _REMOVALS:
                    target = node.func.value
                elif isinstance(node, ast.Delete):
                    for t in node.targets:
                        if isinstance(t, ast.Subscript):
                            target = t.value
                elif isinstance(node, ast.Global):
                    for name in node.names:
                        if _rebinds(fn, name):
                            out.add(f"{mod.src.module}.{name}")
                if target is not None:
                    name = mod.qualified(target)
                    local = f"{mod.src.module}.{target.id}" if isinstance(target, ast.Name) else ""
                    out.update(n for n in (name, local) if n in containers)
    return out


def _rebinds(fn: Function, name: str) -> bool:
    return any(isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
               for node in ast.walk(fn.node))


def _locals(fn: Function) -> set[str]:
    args = fn.node.args
    out = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    for node in own_nodes(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
    return out


def unbounded_lru_cache(ctx: RuleContext) -> None:
    """MP102: ``lru_cache(maxsize=None)`` / ``functools.cache`` called with request data."""
    cached = {id(fn.node): fn for mod in ctx.project.modules for fn in mod.functions if _unbounded_cache(mod, fn)}
    if not cached:
        return
    for fn in ctx.project.per_request():
        if id(fn.node) in cached and fn.is_handler and _params(fn):
            ctx.report("MP102", fn.module, fn.node,
                       f"`{fn.qualname}` is an unbounded cache and a view: every distinct URL "
                       "argument adds an entry", symbol=fn.qualname, fn=fn)
        for call in calls_in(fn):
            callee = ctx.project.resolve(fn.module, call.func, fn)
            if callee is None or id(callee.node) not in cached:
                continue
            args = [*call.args, *(k.value for k in call.keywords)]
            if any(is_request_data(fn.module, a, fn.tainted) for a in args):
                ctx.report("MP102", fn.module, call,
                           f"`{callee.qualname}` (an unbounded cache, {callee.module.src.display}:"
                           f"{callee.node.lineno}) is called with request data in {fn.per_request}",
                           symbol=callee.qualname, fn=fn)


def _params(fn: Function) -> list[str]:
    args = fn.node.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]


def _unbounded_cache(mod: ModuleFacts, fn: Function) -> bool:
    for deco in fn.node.decorator_list:
        if isinstance(deco, ast.Call):
            name = mod.call_name(deco)
            if name == "functools.lru_cache":
                size = deco.args[0] if deco.args else next((k.value for k in deco.keywords if k.arg == "maxsize"), None)
                if isinstance(size, ast.Constant) and size.value is None:
                    return True
        elif mod.qualified(deco) == "functools.cache":
            return True
    return False


def _scoped_or_closed(fn: Function, call: ast.Call, up: dict[int, ast.AST]) -> tuple[bool, str, bool]:
    """How a created resource ends: (handled, how, stored on g)."""
    mod = fn.module
    parent = up.get(id(call))
    if isinstance(parent, ast.withitem):
        return True, "with", False
    if isinstance(parent, ast.Call) and mod.call_name(parent) in ("contextlib.closing", "closing"):
        return True, "closing", False
    if isinstance(parent, ast.Return) or (isinstance(parent, ast.Await) and isinstance(up.get(id(parent)), ast.Return)):
        return True, "returned", False
    if isinstance(parent, ast.Await):
        parent = up.get(id(parent))
    if not isinstance(parent, (ast.Assign, ast.AnnAssign)):
        return False, "", False
    targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
    names = {t.id for t in targets if isinstance(t, ast.Name)}
    on_g = any(isinstance(t, ast.Attribute) and mod.qualified(t.value) == "flask.g" for t in targets)
    for node in ast.walk(fn.node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("close", "aclose", "dispose", "disconnect") \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names:
            return True, "closed", on_g
        if isinstance(node, ast.withitem):
            inner = node.context_expr
            if isinstance(inner, ast.Call) and inner.args:
                inner = inner.args[0]
            if isinstance(inner, ast.Name) and inner.id in names:
                return True, "with", on_g
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Name) and node.value.id in names and not on_g:
            return True, "returned", False
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in names \
                and any(isinstance(t, ast.Attribute) and mod.qualified(t.value) == "flask.g" for t in node.targets):
            on_g = True
    return False, "", on_g


def _teardown_closes(ctx: RuleContext) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "close"
        for fn in ctx.project.teardowns for node in ast.walk(fn.node)
    )


def connection_per_request(ctx: RuleContext) -> None:
    """MP103: a database connection or engine created per request and not closed or pooled."""
    teardown_closes = _teardown_closes(ctx)
    for fn in ctx.project.per_request():
        up = parents(fn.node)
        for call in calls_in(fn):
            name = fn.module.call_name(call)
            if name in _POOL_FACTORIES:
                ctx.report("MP103", fn.module, call,
                           f"`{name}(...)` builds a new pool/engine in {fn.per_request}; create it once "
                           "at start-up", symbol=name, fn=fn)
                continue
            if name not in _DB_CONNECT:
                continue
            handled, how, on_g = _scoped_or_closed(fn, call, up)
            if how == "with" and name == "sqlite3.connect" and isinstance(up.get(id(call)), ast.withitem):
                ctx.report("MP103", fn.module, call,
                           f"`with sqlite3.connect(...)` in {fn.per_request} commits but does not "
                           "close the connection; use `with closing(sqlite3.connect(...))`", symbol=name, fn=fn)
            elif on_g and not handled:
                if not teardown_closes:
                    ctx.report("MP103", fn.module, call,
                               f"`{name}(...)` is stored on `g` in {fn.per_request} but no teardown "
                               "function closes it", symbol=name, fn=fn)
            elif not handled:
                ctx.report("MP103", fn.module, call,
                           f"`{name}(...)` opens a connection in {fn.per_request} that is never closed",
                           symbol=name, fn=fn)


def whole_read(ctx: RuleContext) -> None:
    """MP106: a whole file, upload or query result read into memory per request."""
    for fn in ctx.project.per_request():
        for call in calls_in(fn):
            what = _whole_read(fn, call)
            if what:
                ctx.report("MP106", fn.module, call, f"{what} in {fn.per_request}", fn=fn)


def _whole_read(fn: Function, call: ast.Call) -> str:
    mod = fn.module
    func = call.func
    if isinstance(func, ast.Attribute):
        no_args = not call.args and not call.keywords
        minus_one = len(call.args) == 1 and _literal(call.args[0]) and ast.literal_eval(call.args[0]) in (-1, None)
        if func.attr in ("read", "readlines") and (no_args or minus_one):
            return f"`.{func.attr}()` reads the whole stream into memory"
        if func.attr in ("read_bytes", "read_text") and mod.qualified(func.value).split(".")[0] != "pkgutil":
            return f"`.{func.attr}()` reads the whole file into memory"
        if func.attr == "fetchall" and not _has_limit(fn, func.value):
            return "`.fetchall()` loads every row of the result"
        if func.attr == "all" and no_args and _is_query(func.value) and not _has_limit(fn, func.value):
            return "`.all()` loads every row of the query"
    if isinstance(func, ast.Name) and func.id == "list" and len(call.args) == 1:
        arg = call.args[0]
        if (_is_query(arg) or _is_cursor_name(fn, arg)) and not _has_limit(fn, arg):
            return "`list(...)` of a query loads every row"
    return ""


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return False
    return True


def _is_query(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in ("query", "execute", "scalars"):
            return True
    return False


def _is_cursor_name(fn: Function, node: ast.AST) -> bool:
    if not isinstance(node, ast.Name):
        return False
    for sub in own_nodes(fn):
        if isinstance(sub, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in sub.targets):
            if _is_query(sub.value):
                return True
    return False


def _has_limit(fn: Function, receiver: ast.AST) -> bool:
    """True when the SQL or query behind ``receiver`` is limited (LIMIT, .limit(), paginate)."""
    nodes: list[ast.AST] = [receiver]
    if isinstance(receiver, ast.Name):
        for sub in own_nodes(fn):
            if isinstance(sub, ast.Assign) and any(isinstance(t, ast.Name) and t.id == receiver.id for t in sub.targets):
                nodes.append(sub.value)
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "execute" \
                    and isinstance(sub.func.value, ast.Name) and sub.func.value.id == receiver.id:
                nodes.append(sub)
    for root in nodes:
        for sub in ast.walk(root):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _LIMIT.search(sub.value):
                return True
            if isinstance(sub, ast.Attribute) and sub.attr in ("limit", "paginate", "first", "one", "slice"):
                return True
    return False


def logging_per_request(ctx: RuleContext) -> None:
    """MP108: handlers or filters added, or loggers named from request data, per request."""
    for fn in ctx.project.per_request():
        for call in calls_in(fn):
            if isinstance(call.func, ast.Attribute) and call.func.attr in ("addHandler", "addFilter"):
                ctx.report("MP108", fn.module, call,
                           f"`.{call.func.attr}(...)` in {fn.per_request} adds to the logger on every request",
                           fn=fn)
            elif fn.module.call_name(call) == "logging.getLogger" and call.args \
                    and is_request_data(fn.module, call.args[0], fn.tainted):
                ctx.report("MP108", fn.module, call,
                           f"`logging.getLogger(...)` with a name from request data in {fn.per_request} "
                           "creates a logger that is never freed", fn=fn)


def http_session_per_request(ctx: RuleContext) -> None:
    """MP109: an HTTP client session created per request and not closed."""
    for fn in ctx.project.per_request():
        up = parents(fn.node)
        for call in calls_in(fn):
            name = fn.module.call_name(call)
            if name not in _HTTP_CLIENTS:
                continue
            handled, _how, _on_g = _scoped_or_closed(fn, call, up)
            if not handled:
                ctx.report("MP109", fn.module, call,
                           f"`{name}()` in {fn.per_request} is never closed", symbol=name, fn=fn)


def thread_per_request(ctx: RuleContext) -> None:
    """MP111: a thread, process or pool started per request."""
    for fn in ctx.project.per_request():
        up = parents(fn.node)
        for call in calls_in(fn):
            name = fn.module.call_name(call)
            if name in _THREADS:
                ctx.report("MP111", fn.module, call, f"`{name}(...)` in {fn.per_request}", symbol=name, fn=fn)
            elif name in _POOLS and not isinstance(up.get(id(call)), ast.withitem):
                ctx.report("MP111", fn.module, call,
                           f"`{name}(...)` in {fn.per_request} starts a pool per request and never shuts "
                           "it down", symbol=name, fn=fn)
