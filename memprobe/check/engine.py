"""Run every rule over a target and assemble the checklist: the ``check`` pipeline.

    target -> source files -> facts (handlers, per-request functions) -> rules -> findings
           -> suppressions and ignores -> checklist (+ advice) -> CheckResult
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from memprobe.check import appwide, importtime, perrequest
from memprobe.check.context import Hit, RuleContext, RuleFn
from memprobe.check.facts import Project
from memprobe.check.model import ChecklistItem, CheckResult, Finding, Rule, SourceError
from memprobe.check.rules import ADVICE_RULES, RULES, STATIC_RULES, lookup
from memprobe.check.source import (
    Deployment,
    SourceFile,
    Target,
    config_ignores,
    deployment,
    display,
    is_test_file,
    parse,
    resolve_target,
)
from memprobe.errors import UsageError

#: rule id -> the function that looks for it
DETECTORS: dict[str, RuleFn] = {
    "MP101": perrequest.global_growth,
    "MP102": perrequest.unbounded_lru_cache,
    "MP103": perrequest.connection_per_request,
    "MP104": appwide.cache_unbounded,
    "MP105": appwide.per_process_cache,
    "MP106": perrequest.whole_read,
    "MP107": importtime.import_time_load,
    "MP108": perrequest.logging_per_request,
    "MP109": perrequest.http_session_per_request,
    "MP110": appwide.debug_mode,
    "MP111": perrequest.thread_per_request,
    "MP112": appwide.lru_cache_method,
}


def normalise_ignores(names: Iterable[str]) -> list[str]:
    """Rule ids for ``names`` (ids or slugs, comma lists allowed); UsageError for unknown names."""
    out: list[str] = []
    for raw in names:
        for name in raw.split(","):
            if not name.strip():
                continue
            rule = lookup(name)
            if rule is None:
                raise UsageError(f"unknown rule {name.strip()!r} (rules: {', '.join(RULES)})")
            if rule.id not in out:
                out.append(rule.id)
    return out


def check(spec: str, ignore: Iterable[str] = (), include_tests: bool = False) -> CheckResult:
    """Check the target ``spec`` (directory, file, ``module:attr``) and return the checklist."""
    target = resolve_target(spec, include_tests)
    cfg_names, _cfg = config_ignores(target.files[0] if len(target.files) == 1 else target.root)
    ignored = normalise_ignores([*cfg_names, *ignore])
    return check_target(target, ignored)


def check_target(target: Target, ignored: list[str], texts: dict[Path, str] | None = None) -> CheckResult:
    """Check already-resolved files, with rule ids in ``ignored`` switched off; a file in
    ``texts`` is checked with that text instead of what is on disk (an editor's unsaved buffer)."""
    t0 = time.monotonic()
    sources: list[SourceFile] = []
    errors: list[SourceError] = []
    for path in target.files:
        parsed = parse(path, target.root, (texts or {}).get(path))
        (errors if isinstance(parsed, SourceError) else sources).append(parsed)  # type: ignore[arg-type]
    project = Project(sources)
    deploy = deployment(target.root if len(target.files) != 1 else target.files[0].parent)
    ctx = RuleContext(project, deploy)
    for rule_id, detector in DETECTORS.items():
        if rule_id in ignored:
            continue
        if RULES[rule_id].flask_only and not project.flask_detected:
            continue
        detector(ctx)
    findings, suppressed = _findings(ctx.hits, ignored)
    checklist = build_checklist(findings, ignored, project.flask_detected, deploy)
    return CheckResult(
        target=target.spec,
        findings=findings,
        checklist=checklist,
        files=[s.display for s in sources] + [e.file for e in errors],
        errors=errors,
        flask_detected=project.flask_detected,
        ignored_rules=ignored,
        suppressed=suppressed,
        duration_s=time.monotonic() - t0,
    )


#: (files, their mtimes and sizes, ignored ids) -> the result: flake8 asks once per file, and every
#: file of one package shares one analysis. Least recently used first, at most RESULTS_CACHED: a
#: long-lived flake8 or editor process makes a new key at every save, and the old ones are dead.
_RESULTS: OrderedDict[tuple[object, ...], CheckResult] = OrderedDict()
_RESULTS_LOCK = threading.Lock()
#: One entry per package (or script) analysed: 128 covers the packages of a large repository in
#: one flake8 pass. An entry (its key's file stamps and the CheckResult) was measured at ~6 KiB for
#: a package of a few modules and ~37 KiB for memprobe's 103: a few MiB at most, however long
#: the process lives.
RESULTS_CACHED = 128


def check_file(filename: str, text: str | None = None) -> list[Finding]:
    """The findings in one file, as ``memprobe check FILE`` finds them: the file is analysed with
    its package (or, for a script, the modules it imports from its folder) and the deployment
    files beside it, ``[memprobe:check] ignore`` of the nearest setup.cfg applies, and so does
    ``# memprobe: ignore[...]``. ``text`` is the file's content when it differs from the disk's."""
    result, path = _file_result(filename, text)
    return [f for f in result.findings if Path(f.file).resolve() == path]


def check_files(filenames: Iterable[str], ignore: Iterable[str] = (),
                include_tests: bool = False) -> CheckResult:
    """What :func:`check_file` finds in each of ``filenames`` (and their syntax errors), as one
    checklist: ``memprobe check --files``, the pre-commit hook's view of the files it is given.
    Test modules among them (:func:`~memprobe.check.source.is_test_file`) are skipped, as in a
    directory, unless ``include_tests``; with it, each file's package is analysed with its test
    files too."""
    t0 = time.monotonic()
    names = [n for n in filenames if include_tests or not is_test_file(Path(n))]
    extra = normalise_ignores(ignore)
    findings: list[Finding] = []
    errors: list[SourceError] = []
    flask = False
    ignored: list[str] = list(extra)
    for name in names:
        result, path = _file_result(name, None, extra, include_tests)
        findings += [f for f in result.findings if Path(f.file).resolve() == path]
        errors += [e for e in result.errors if Path(e.file).resolve() == path]
        flask = flask or result.flask_detected
        ignored += [i for i in result.ignored_rules if i not in ignored]
    findings.sort(key=lambda f: (f.file, f.line, f.rule))
    return CheckResult(
        target=names[0] if len(names) == 1 else f"{len(names)} files",
        findings=findings,
        checklist=build_checklist(findings, ignored, flask),
        files=[display(Path(n).resolve()) for n in names],
        errors=errors,
        flask_detected=flask,
        ignored_rules=ignored,
        duration_s=time.monotonic() - t0,
    )


def _file_result(filename: str, text: str | None, extra: Iterable[str] = (),
                 include_tests: bool = False) -> tuple[CheckResult, Path]:
    """The result of the analysis ``filename`` is part of (cached while its files are unchanged),
    and the file's resolved path."""
    path = Path(filename).resolve()
    if not path.is_file():  # flake8 reading stdin: the text alone, in the current directory
        source = Path.cwd() / (path.name if path.suffix == ".py" else "stdin.py")
        ignored = normalise_ignores([*config_ignores(Path.cwd())[0], *extra])
        return check_target(Target(filename, Path.cwd(), [source]), ignored, {source: text or ""}), source
    target = resolve_target(str(path), include_tests)
    ignored = normalise_ignores([*config_ignores(path)[0], *extra])
    on_disk = text is None or _read(path) == text
    key = (tuple(_stamp(f) for f in target.files), tuple(ignored))
    result = _cached(key) if on_disk else None
    if result is None:
        result = check_target(target, ignored, None if on_disk else {path: text or ""})
        if on_disk:
            _remember(key, result)
    return result, path


def _cached(key: tuple[object, ...]) -> CheckResult | None:
    with _RESULTS_LOCK:
        result = _RESULTS.get(key)
        if result is not None:
            _RESULTS.move_to_end(key)
        return result


def _remember(key: tuple[object, ...], result: CheckResult) -> None:
    with _RESULTS_LOCK:
        _RESULTS[key] = result
        _RESULTS.move_to_end(key)
        while len(_RESULTS) > RESULTS_CACHED:
            _RESULTS.popitem(last=False)


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return str(path), 0, -1
    return str(path), stat.st_mtime_ns, stat.st_size


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def make_finding(rule: Rule, file: str, line: int, message: str, **extra: object) -> Finding:
    """A finding of ``rule`` with the catalogue's title, advice and rationale filled in."""
    return Finding(rule=rule.id, severity=rule.severity, file=file, line=line, title=rule.title,
                   message=message, advice=rule.fix, rationale=rule.rationale, **extra)  # type: ignore[arg-type]


def _findings(hits: list[Hit], ignored: list[str]) -> tuple[list[Finding], int]:
    out: list[Finding] = []
    seen: set[tuple[str, str, int]] = set()
    suppressed = 0
    for hit in hits:
        src = hit.module.src
        key = (hit.rule, src.display, hit.line)
        if key in seen:
            continue
        seen.add(key)
        if hit.rule in ignored or _suppressed(src, hit.line, hit.rule):
            suppressed += 1
            continue
        out.append(make_finding(RULES[hit.rule], src.display, hit.line, hit.message, col=hit.col,
                                snippet=src.snippet(hit.line), symbol=hit.symbol, scope=hit.scope))
    out.sort(key=lambda f: (f.file, f.line, f.rule))
    return out, suppressed


def _suppressed(src: SourceFile, line: int, rule_id: str) -> bool:
    names = src.suppressions.get(line)
    if names is None:
        return False
    if not names:
        return True
    rule = RULES[rule_id]
    return any(lookup(n) is rule for n in names)


_ORDER = {"fail": 0, "warn": 1, "info": 2, "pass": 3, "ignored": 4, "n/a": 5}


def build_checklist(findings: list[Finding], ignored: list[str], flask: bool,
                    deploy: Deployment | None = None, measured: bool = False) -> list[ChecklistItem]:
    """One item per static rule (pass/warn/fail/ignored/n/a), then the advice items."""
    items: list[ChecklistItem] = []
    rule_ids = [r.id for r in STATIC_RULES] + sorted({f.rule for f in findings if RULES[f.rule] not in STATIC_RULES
                                                      and RULES[f.rule] not in ADVICE_RULES})
    for rule_id in rule_ids:
        rule = RULES[rule_id]
        mine = [f for f in findings if f.rule == rule_id]
        if rule_id in ignored:
            status, note = "ignored", "switched off"
        elif rule.flask_only and not flask:
            status, note = "n/a", "not a Flask app"
        elif mine:
            status = min((f.severity.value for f in mine), key=_ORDER.__getitem__)
            note = ""
        else:
            status, note = "pass", ""
        items.append(ChecklistItem(rule.id, rule.slug, rule.title, status, len(mine), rule.fix, note))
    for rule in ADVICE_RULES:
        note = ""
        if rule.id == "MP902" and deploy is not None and deploy.max_requests_evidence:
            note = f"seen: {deploy.max_requests_evidence}"
        elif rule.id == "MP901" and measured:
            note = "measured with --run"
        status = "ignored" if rule.id in ignored else "info"
        items.append(ChecklistItem(rule.id, rule.slug, rule.title, status, 0, rule.fix, note))
    return items


