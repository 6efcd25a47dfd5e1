"""A leak benchmark with the peers side by side: memprobe against memray, tracemalloc diffs,
objgraph and Heapy, on a labelled corpus (bench/leakbench/, docs/leakbench.md).

    python bench/leakbench.py DIR [--only NAME[,NAME]] [--json FILE] [--requests N] [--warmup W]
                              [--case-timeout S] [--cases ID,ID] [--sensitivity] [--sensitivity-runs R]
                              [--no-corpus] [--memprobe-settings JSON] [--render JSON]

``DIR/manifest.json``: one entry per case, ``{"id": {"target": "file.py:app", "routes": ["/x"],
"verdict": ["leak"], "kind": ["python"], "sites": [["file.py", 12]], "holders": ["_cache"]}}``,
each list the acceptable answers. Each contender's decision rule is in its module under
bench/leakbench/contenders/ and is the same for every case. Run it under ``nice -n 19``: every
process it starts inherits that.

Scores, per contender: ``precision`` and ``recall`` of its leak verdicts (a case whose verdicts
include ``leak`` is a leak), ``false_leaks`` (leak said on a case that is not), ``line_top3``
(share of leak cases with sites where it said leak and one of its top 3 lines is one of them),
``holder_named`` (the same for holders: an acceptable name inside one it gave), ``verdict_right``
(the verdict is one of the case's), ``kind_right``,
``median_s`` and ``max_s`` per case. What a contender cannot answer is "n/a" and why.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "leakbench" / "contenders"))
sys.path.insert(0, str(HERE.parent))

import pytest_memray_case  # noqa: E402
import run_memprobe  # noqa: E402
import run_peers  # noqa: E402
from answer import Answer, Contender  # noqa: E402

ALL = ["memprobe", "memprobe-thorough", "memray", "pytest-memray", "tracemalloc", "objgraph", "heapy"]
CONTENDERS: dict[str, Contender] = {**run_memprobe.CONTENDERS, **run_peers.CONTENDERS,
                                    "pytest-memray": pytest_memray_case.CONTENDER}
SENSITIVITY_SIZES = [8, 16, 32, 64, 128, 256]


def is_leak(case: dict[str, Any]) -> bool:
    """A case is a leak when ``leak`` is one of its acceptable verdicts."""
    return "leak" in case["verdict"]


def site_hit(case: dict[str, Any], answer: Answer) -> bool:
    """One of the answer's top 3 lines is one of the case's (same file name, same line)."""
    wanted = {(Path(f).name, int(n)) for f, n in case["sites"]}
    return any((Path(f).name, int(n)) in wanted for f, n in answer.sites[:3])


def holder_hit(case: dict[str, Any], answer: Answer) -> bool:
    """An acceptable holder name appears in one of the holders the answer gives."""
    return any(name in held for name in case["holders"] for held in answer.holders)


def _share(hits: int, of: int) -> float | None:
    return round(hits / of, 3) if of else None


def summary(contender: Contender, cases: dict[str, Any], answers: dict[str, Answer]) -> dict[str, Any]:
    """The contender's scores over ``cases``."""
    said = {i: a.verdict == "leak" for i, a in answers.items()}
    leaks = [i for i in cases if is_leak(cases[i])]
    tp = sum(said[i] for i in leaks)
    fp = sum(said[i] for i in cases if not is_leak(cases[i]))
    with_sites = [i for i in leaks if cases[i]["sites"]]
    with_holders = [i for i in leaks if cases[i]["holders"]]
    with_kind = [i for i in leaks if cases[i]["kind"]]
    times = [a.seconds for a in answers.values()]
    out: dict[str, Any] = {
        "cases": len(cases), "errors": sum(a.verdict is None for a in answers.values()),
        "true_leaks": tp, "missed_leaks": len(leaks) - tp, "precision": _share(tp, tp + fp),
        "recall": _share(tp, len(leaks)), "false_leaks": fp, "not_leaks": len(cases) - len(leaks),
        "verdict_right": _share(sum(answers[i].verdict in cases[i]["verdict"] for i in cases), len(cases)),
        "line_top3": contender.line or _share(sum(said[i] and site_hit(cases[i], answers[i]) for i in with_sites),
                                              len(with_sites)),
        "holder_named": contender.holder or _share(
            sum(said[i] and holder_hit(cases[i], answers[i]) for i in with_holders), len(with_holders)),
        "kind_right": contender.kind or _share(
            sum(said[i] and answers[i].kind in cases[i]["kind"] for i in with_kind), len(with_kind)),
        "median_s": round(statistics.median(times), 2) if times else None,
        "max_s": round(max(times), 2) if times else None,
    }
    return out


def run_contender(name: str, directory: Path, cases: dict[str, Any], args: argparse.Namespace) -> dict[str, Answer]:
    """Every case's answer from ``name``."""
    if name.startswith("memprobe"):
        return run_memprobe.run(name, directory, cases, json.loads(args.memprobe_settings), say)
    answers = {}
    for case_id, case in cases.items():
        if name == "pytest-memray":
            answers[case_id] = pytest_memray_case.run(directory, case, args.warmup, args.requests, args.case_timeout)
        else:
            answers[case_id] = run_peers.run(name, directory, case, args.warmup, args.requests, args.case_timeout)
        say(f"{name}: {case_id} -> {answers[case_id].verdict or answers[case_id].error}")
    return answers


def say(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


def mark(case: dict[str, Any], answer: Answer) -> str:
    """A table cell: the verdict, ``!`` when wrong about leaking, ``~`` when not a leak but not one of the
    verdicts accepted either (bounded for clean), ``+L`` line, ``+H`` holder."""
    if answer.verdict is None:
        return "error"
    right = (answer.verdict == "leak") == is_leak(case)
    cell = answer.verdict + ("" if right else " !") + ("" if not right or answer.verdict in case["verdict"] else " ~")
    if answer.verdict == "leak" and is_leak(case):
        cell += " +L" if site_hit(case, answer) else ""
        cell += " +H" if holder_hit(case, answer) else ""
    return cell


def table(rows: list[list[str]]) -> str:
    """Plain columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def answers_of(saved: dict[str, Any]) -> dict[str, Answer]:
    """A contender's answers as the JSON has them."""
    return {i: Answer(**{**a, "sites": [tuple(s) for s in a["sites"]]}) for i, a in saved["cases"].items()}


def render(report: dict[str, Any], cases: dict[str, Any]) -> str:
    """The side-by-side tables: scores (from the answers, so that a saved run is scored as today),
    then every case."""
    names = list(report["contenders"])
    answers = {n: answers_of(report["contenders"][n]) for n in names}
    scores = {n: summary(CONTENDERS[n], cases, answers[n]) for n in names}
    keys = ["cases", "errors", "true_leaks", "missed_leaks", "precision", "recall", "false_leaks", "verdict_right",
            "line_top3",
            "holder_named", "kind_right", "median_s", "max_s"]
    rows = [["", *names]]
    notes: list[str] = []
    for key in keys:
        row = [key]
        for name in names:
            value = scores[name][key]
            if isinstance(value, str):
                notes.append(f"{name} {key}: {value}")
                value = "n/a"
            row.append("-" if value is None else str(value))
        rows.append(row)
    per_case = [["case", *names]]
    for case_id, case in cases.items():
        per_case.append([case_id, *(mark(case, answers[n][case_id]) for n in names)])
    out = [table(rows), "", *notes, "", table(per_case)] if names else []
    if report.get("sensitivity"):
        sens = [["sensitivity", *report["sensitivity"]]]
        for k in [0, *SENSITIVITY_SIZES]:
            label = f"{k} B/request{' (the control)' if not k else ''}: leak said in"
            sens.append([label, *(f"{v['found'][str(k)]}/{report['sensitivity_runs']}"
                                  for v in report["sensitivity"].values())])
        sens.append([f"smallest found in >= 90% of {report['sensitivity_runs']} runs",
                     *(smallest_found(v["found"], report["sensitivity_runs"])
                       for v in report["sensitivity"].values())])
        out += ["", table(sens)]
    return "\n".join(out)


def sensitivity(names: list[str], runs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Per contender: which of ``SENSITIVITY_SIZES`` it calls a leak in how many of ``runs``
    (and ``/leak/0``, which keeps nothing: the control)."""
    directory = HERE / "leakbench"
    cases = {f"leak/{k}": {"target": "sensitivity_app.py:app", "routes": [f"/leak/{k}"],
                           "verdict": ["leak"] if k else ["clean"], "kind": ["python"] if k else [], "sites": [],
                           "holders": []} for k in [0, *SENSITIVITY_SIZES]}
    out: dict[str, Any] = {}
    for name in names:
        found = {k: 0 for k in [0, *SENSITIVITY_SIZES]}
        for run in range(runs):
            say(f"sensitivity {name}: run {run + 1} of {runs}")
            answers = run_contender(name, directory, cases, args)
            for k in found:
                found[k] += answers[f"leak/{k}"].verdict == "leak"
        counts = {str(k): v for k, v in found.items()}
        out[name] = {"found": counts, "smallest": smallest_found(counts, runs)}
    return out


def smallest_found(found: dict[str, int], runs: int) -> str:
    """The smallest size from which every larger one was called a leak in 90 % of ``runs``;
    "n/a" when the control (0 B/request) was called one in more than 10 % of them: a
    contender that calls everything a leak finds every size."""
    need = math.ceil(0.9 * runs)
    if found.get("0", 0) > runs - need:
        return f"n/a (the control too, {found['0']}/{runs})"
    smallest = next((k for k in SENSITIVITY_SIZES if all(found[str(j)] >= need for j in SENSITIVITY_SIZES if j >= k)),
                    None)
    return str(smallest) if smallest is not None else "none"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--only", default=",".join(ALL), help=f"contenders, comma separated: {', '.join(ALL)}")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cases", help="case ids, comma separated (default: all)")
    parser.add_argument("--requests", type=int, default=2000, help="peers: measured requests per case")
    parser.add_argument("--warmup", type=int, default=200, help="peers: requests before the 'before'")
    parser.add_argument("--case-timeout", type=float, default=300.0, help="peers: seconds a case may take")
    parser.add_argument("--memprobe-settings", default="{}", help="hunt's settings as JSON (default: hunt's own)")
    parser.add_argument("--sensitivity", action="store_true", help="also the sensitivity curve")
    parser.add_argument("--sensitivity-runs", type=int, default=10)
    parser.add_argument("--no-corpus", action="store_true", help="only the sensitivity curve")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the tables of a saved run; run nothing")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}: choose from {', '.join(ALL)}")
    directory = args.dir.resolve()
    cases: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    if args.cases:
        cases = {i: cases[i] for i in args.cases.split(",")}
    if args.render:
        saved = json.loads(args.render.read_text())
        if args.json:  # the saved run, scored as today
            for name, got in saved["contenders"].items():
                got["summary"] = summary(CONTENDERS[name], cases, answers_of(got))
            args.json.write_text(json.dumps(saved, indent=1) + "\n")
        print(render(saved, cases))
        return 0
    started = time.monotonic()
    report: dict[str, Any] = {"dir": str(directory), "requests": args.requests, "warmup": args.warmup,
                              "memprobe_settings": json.loads(args.memprobe_settings), "contenders": {}}
    for name in [] if args.no_corpus else names:
        answers = run_contender(name, directory, cases, args)
        report["contenders"][name] = {"summary": summary(CONTENDERS[name], cases, answers),
                                      "cases": {i: answers[i].to_dict() for i in cases}}
        if args.json:  # as each contender ends: a long run stopped half-way keeps what it measured
            args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.sensitivity or args.no_corpus:
        report["sensitivity_runs"] = args.sensitivity_runs
        report["sensitivity"] = sensitivity(names, args.sensitivity_runs, args)
    report["duration_s"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(render(report, cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
