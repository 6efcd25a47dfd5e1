"""MP107: large data loaded when a module is imported.

What runs at import: module and class bodies (not functions, not ``if __name__ == "__main__":``)
and the app's own functions they call (``PRICES = load_prices()``, ``app = create_app()``), two
calls deep. What counts as loading data:

* a data library's loader, always: ``pandas.read_*``, ``numpy.load/loadtxt``, ``pickle.load``,
  ``torch.load``, ``*.from_pretrained``, ``.fetchall()``...;
* a read of a file: ``open(...).read()``, ``f.read()`` / ``json.load(f)`` / ``csv.reader(f)`` in
  ``with open(...) as f``, ``json.load(open(...))``, ``yaml.safe_load``, ``Path(...).read_text()``
  / ``read_bytes()``, iterating the file (``[json.loads(line) for line in f]``). The path is read
  from its literal parts (``os.path.join(HERE, "data", "x.json")``, ``Path(__file__).parent /
  "data" / "x.json"``): a file found there of 1 MiB or more is large; a file not found (data is
  often not committed) is large when its name says data (``.csv``, ``.parquet``, ``.npy``,
  ``.pkl``..., ``catalog.json``, or in a ``data/`` folder). A small settings file read at import
  is fine. A path held in a module-level name (``CATALOG_PATH = os.path.join(HERE, "catalog.json")``,
  ``DATA = Path(__file__).parent / "x.csv"``, then ``with open(CATALOG_PATH) as fh`` or
  ``with DATA.open() as fh``) is read through that name's one assignment.
"""
from __future__ import annotations

import ast
import copy
import re
from pathlib import Path, PurePosixPath

from memprobe.check.context import RuleContext
from memprobe.check.facts import Function, ModuleFacts, Project

#: files at least this large, read at import time, are "large data"
LARGE_FILE = 1 << 20
HEAVY_LOADERS = frozenset({
    "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "pickle.load", "joblib.load",
    "torch.load", "tensorflow.keras.models.load_model", "keras.models.load_model", "h5py.File",
    "spacy.load", "datasets.load_dataset", "sentence_transformers.SentenceTransformer",
    "pyarrow.parquet.read_table", "gensim.models.KeyedVectors.load", "pickle.loads",
})
HEAVY_PREFIXES = ("pandas.read_", "polars.read_", "dask.dataframe.read_", "pyarrow.csv.read_")
FILE_READS = frozenset({"read", "readlines", "read_bytes", "read_text"})
PARSERS = frozenset({"json.load", "yaml.load", "yaml.safe_load", "yaml.full_load", "yaml.load_all",
                     "yaml.safe_load_all", "tomllib.load", "csv.reader", "csv.DictReader", "marshal.load",
                     "xml.etree.ElementTree.parse", "lxml.etree.parse"})
#: a file with one of these suffixes holds data, not settings
DATA_SUFFIXES = frozenset({".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".feather", ".arrow", ".orc",
                           ".npy", ".npz", ".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".xlsx", ".xls",
                           ".gz", ".bz2", ".xz", ".zst", ".zip", ".bin", ".pt", ".pth", ".onnx", ".vec",
                           ".mmdb", ".dat"})
#: a file in a folder of one of these names holds data
DATA_DIRS = frozenset({"data", "datasets", "dataset", "models", "corpus", "dumps", "assets_data"})
#: a file whose name (split at ``_``, ``-``, ``.``) has one of these words holds data
DATA_WORDS = frozenset({"catalog", "catalogue", "products", "inventory", "dataset", "corpus", "vocab",
                        "vocabulary", "embeddings", "dump", "records"})
#: calls that build a path from parts, as written in source
_PATH_BUILDERS = frozenset({"os.path.join", "path.join", "Path", "pathlib.Path", "PurePath", "PosixPath"})
_DEPTH = 2
#: how many module-level names deep a path is followed (``DATA = HERE / "x"``, ``HERE = ...``)
_NAME_DEPTH = 3


def import_time_load(ctx: RuleContext) -> None:
    """MP107: datasets, models or large files loaded when the module is imported."""
    for mod in ctx.project.modules:
        for node in _import_time_nodes(mod.src.tree.body):
            found = _load(mod, node)
            if found:
                where = node.iter if isinstance(node, ast.comprehension) else node
                ctx.report("MP107", mod, where, f"{found[0]} at import time", symbol=found[1])
                continue
            if isinstance(node, ast.Call):
                helper = _helper_load(ctx.project, mod, node, _DEPTH, set())
                if helper:
                    name = mod.call_name(node) or ast.unparse(node.func)
                    ctx.report("MP107", mod, node, f"`{name}()` runs at import time and loads data: {helper}",
                               symbol=name)


def _import_time_nodes(body: list[ast.stmt]) -> list[ast.AST]:
    """Calls and comprehensions/loops executed when ``body`` runs: not inside functions, lambdas,
    or ``__main__`` blocks; in source order."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Call, ast.For, ast.comprehension)):
            out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return sorted(out, key=_position)


def _position(node: ast.AST) -> tuple[int, int]:
    where = node.iter if isinstance(node, ast.comprehension) else node
    return getattr(where, "lineno", 0), getattr(where, "col_offset", 0)


def _is_main_guard(test: ast.AST) -> bool:
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def _load(mod: ModuleFacts, node: ast.AST) -> tuple[str, str] | None:
    """(what is loaded, in words; the symbol) when ``node`` loads data, else None."""
    if isinstance(node, (ast.For, ast.comprehension)):
        source = _opened_file(mod, node.iter)
        if source is None:
            return None
        verdict = _large(mod, source)
        return (f"iterating `{_shown(mod, source)}` ({verdict}) reads it whole", _shown(mod, source)) if verdict else None
    if not isinstance(node, ast.Call):
        return None
    name = mod.call_name(node)
    attr = node.func.attr if isinstance(node.func, ast.Attribute) else ""
    if name in HEAVY_LOADERS or name.startswith(HEAVY_PREFIXES) or attr == "from_pretrained":
        return f"`{name or attr}(...)` runs", name
    if attr == "fetchall":
        return "`.fetchall()` loads a whole table into every worker", ""
    if name in PARSERS or attr in FILE_READS:
        source = _file_of(mod, node)
        if source is None:
            return None
        verdict = _large(mod, source)
        return (f"`{_shown(mod, source)}` ({verdict}) is read", _shown(mod, source)) if verdict else None
    return None


def _helper_load(project: Project, mod: ModuleFacts, call: ast.Call, depth: int, seen: set[int]) -> str:
    """What an app function called at import time loads ('' when nothing), through up to ``depth`` calls."""
    fn = project.resolve(mod, call.func)
    if fn is None or depth <= 0 or id(fn.node) in seen:
        return ""
    seen.add(id(fn.node))
    verdict = _large(mod, call) if _reads_an_argument(fn) else ""
    if verdict:
        return f"`{_shown(mod, call)}` ({verdict}) is read ({_where(fn, fn.node)})"
    for node in _import_time_nodes(fn.node.body):
        found = _load(fn.module, node)
        if found:
            return f"{found[0]} ({_where(fn, node)})"
        if isinstance(node, ast.Call):
            deeper = _helper_load(project, fn.module, node, depth - 1, seen)
            if deeper:
                return deeper
    return ""


def _reads_an_argument(fn: Function) -> bool:
    """True when ``fn`` reads a file its path comes from outside: ``open(path)``, ``json.load(f)``
    of such a file, ``Path(path).read_text()``."""
    args = {a.arg for a in [*fn.node.args.posonlyargs, *fn.node.args.args, *fn.node.args.kwonlyargs]}
    mod = fn.module
    for node in _import_time_nodes(fn.node.body):
        if isinstance(node, ast.Call):
            name = mod.call_name(node)
            attr = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name in ("open", "io.open", "pathlib.Path") and node.args and \
                    any(isinstance(n, ast.Name) and n.id in args for n in ast.walk(node.args[0])):
                return True
            if name.startswith(HEAVY_PREFIXES) or name in HEAVY_LOADERS or attr in FILE_READS:
                if any(isinstance(n, ast.Name) and n.id in args for n in ast.walk(node)):
                    return True
    return False


def _where(fn: Function, node: ast.AST) -> str:
    return f"`{fn.qualname}`, {fn.module.src.display}:{_position(node)[0]}"


def _opened_file(mod: ModuleFacts, expr: ast.AST) -> ast.AST | None:
    """The path expression of the file ``expr`` iterates: ``open(PATH)`` itself, or a name bound by
    ``with open(PATH) as f``."""
    if isinstance(expr, ast.Call) and mod.call_name(expr) in ("open", "io.open", "codecs.open", "gzip.open"):
        return expr.args[0] if expr.args else None
    if isinstance(expr, ast.Name):
        return _with_source(mod, expr, {expr.id})
    return None


def _file_of(mod: ModuleFacts, call: ast.Call) -> ast.AST | None:
    """The expression naming the file a read or a parser call reads."""
    if _path_texts(_resolved(mod, call)):
        return call
    # `with open(PATH) as f: DATA = json.load(f)`: the path is in the enclosing with statement
    return _with_source(mod, call, {n.id for n in ast.walk(call) if isinstance(n, ast.Name)})


def _with_source(mod: ModuleFacts, inside: ast.AST, names: set[str], literal: bool = True) -> ast.AST | None:
    """What the innermost ``with ... as NAME`` around ``inside`` opens, for a NAME in ``names``
    (when ``literal``, only an opening that names its path in literals)."""
    line = getattr(inside, "lineno", 0)
    best: tuple[int, ast.AST] | None = None
    for node in ast.walk(mod.src.tree):
        if not isinstance(node, (ast.With, ast.AsyncWith)) or not node.lineno <= line <= (node.end_lineno or 0):
            continue
        for item in node.items:
            opened = item.context_expr
            if isinstance(item.optional_vars, ast.Name) and item.optional_vars.id in names \
                    and isinstance(opened, ast.Call) and (not literal or _path_texts(_resolved(mod, opened))) \
                    and (best is None or node.lineno > best[0]):
                best = node.lineno, item.context_expr
    return best[1] if best else None


def _path_texts(expr: ast.AST) -> list[str]:
    """The paths ``expr`` names, from its string literals: a path built by ``os.path.join`` or
    ``/`` first (its literal parts joined), then each literal that looks like a path."""
    joined: list[str] = []
    for node in ast.walk(expr):
        parts: list[str] | None = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = _div_parts(node)
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in _PATH_BUILDERS:
            parts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if parts:
            joined.append("/".join(parts))
    out = sorted(joined, key=len, reverse=True)
    for node in ast.walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 300 \
                and ("." in node.value or "/" in node.value) and "\n" not in node.value:
            out.append(node.value)
    return [p for p in dict.fromkeys(out) if p]


def _div_parts(node: ast.AST) -> list[str]:
    """The string literals of a ``a / "b" / "c"`` chain, left to right."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _div_parts(node.left) + _div_parts(node.right)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Call) and node.args:  # Path("data") / "x.csv"
        return [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return []


def _large(mod: ModuleFacts, expr: ast.AST) -> str:
    """Why the file ``expr`` names is large data ('' when it is not): its size when it is found
    (from the module's folder or the working directory), or its name when it is not."""
    texts = _path_texts(_resolved(mod, expr))
    for text in texts:
        for base in (mod.src.path.parent, Path.cwd()):
            candidate = base / text
            try:
                if candidate.is_file():
                    size = candidate.stat().st_size
                    return f"{size / (1 << 20):.1f} MiB" if size >= LARGE_FILE else ""
            except (OSError, ValueError):
                continue
    for text in texts:
        path = PurePosixPath(text.replace("\\", "/"))
        if path.suffix.lower() in DATA_SUFFIXES:
            return f"a {path.suffix.lower()} data file"
        if any(part.lower() in DATA_DIRS for part in path.parts[:-1]):
            return f"a file of `{path.parts[-2]}/`" if len(path.parts) > 1 else "a data file"
        if DATA_WORDS & set(re.split(r"[_.\-]", path.name.lower())):
            return "a data file, by its name"
    return ""


def _shown(mod: ModuleFacts, expr: ast.AST) -> str:
    texts = _path_texts(_resolved(mod, expr))
    return texts[0] if texts else ast.unparse(expr)


def _resolved(mod: ModuleFacts, expr: ast.AST, depth: int = _NAME_DEPTH) -> ast.AST:
    """``expr`` with each name assigned once at module level replaced by what it is assigned
    (``open(CATALOG_PATH)`` read as ``open(os.path.join(HERE, "catalog.json"))``)."""
    values = _module_names(mod)
    if depth <= 0 or not any(isinstance(n, ast.Name) and n.id in values for n in ast.walk(expr)):
        return expr

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            value = values.get(node.id)
            return _resolved(mod, value, depth - 1) if value is not None and isinstance(node.ctx, ast.Load) else node

    return Substitute().visit(copy.deepcopy(expr))


def _module_names(mod: ModuleFacts) -> dict[str, ast.expr]:
    """The names the module's top level assigns exactly once, and what they are assigned."""
    found: dict[str, list[ast.expr]] = {}
    for stmt in mod.src.tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found.setdefault(target.id, []).append(value)
    return {name: values[0] for name, values in found.items() if len(values) == 1}
