"""Where a Spark application's CPU went, from its JSON event log (``spark.eventLog.enabled``).

Reads one event-log file and prints, per SQL execution (one Spark action: a write, a collect),
its call site, wall time and the executors' CPU seconds summed over its tasks, largest first;
then the per-operator SQL metrics with a time unit (``duration`` of each whole-stage-codegen
block, ``sort time``, ``time in aggregation build``, ``scan time``...), largest first, named by
the operators inside the block. This is the SQL tab's data, without a live UI.

    .venv/bin/python bench/eventlog.py /tmp/ev/local-1234 [--top 25]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

TIME_METRIC_TYPES = ("timing", "nsTiming")


def _walk(plan: dict[str, Any], codegen: str | None, out: list[tuple[str, str, int, str]]) -> None:
    """(operator, metric name, accumulator id, metric type) of every node; codegen blocks named by content."""
    name = plan.get("nodeName", "?")
    if name.startswith("WholeStageCodegen"):
        inner: list[str] = []
        _names(plan.get("children", []), inner)
        label = f"{name} [{' <- '.join(inner[:6])}]"
    else:
        label = name
    for m in plan.get("metrics", []):
        out.append((label, m["name"], m["accumulatorId"], m.get("metricType", "")))
    for child in plan.get("children", []):
        _walk(child, codegen, out)


def _names(children: list[dict[str, Any]], acc: list[str]) -> None:
    for c in children:
        if c.get("nodeName", "").startswith(("WholeStageCodegen", "InputAdapter")) and c["nodeName"] != "InputAdapter":
            continue
        if c.get("nodeName") != "InputAdapter":
            acc.append(c.get("nodeName", "?"))
            _names(c.get("children", []), acc)


def _lines(path: Path) -> list[str]:
    """Event lines of a log file or a rolling log folder (``events_N_*``), zstd-compressed or not."""
    import subprocess

    files = [path] if path.is_file() else sorted(
        (p for p in path.iterdir() if p.name.startswith("events_")), key=lambda p: int(p.name.split("_")[1]))
    lines: list[str] = []
    for f in files:
        if f.suffix == ".zstd":
            text = subprocess.run(["zstd", "-dc", str(f)], capture_output=True, check=False).stdout
            lines += text.decode("utf-8", "replace").splitlines()
        else:
            lines += f.read_text(encoding="utf-8").splitlines()
    return lines


def analyze(path: Path, top: int) -> None:
    executions: dict[int, dict[str, Any]] = {}
    job_exec: dict[int, int] = {}
    stage_exec: dict[int, int] = {}
    exec_cpu: dict[int, float] = defaultdict(float)
    exec_run: dict[int, float] = defaultdict(float)
    accum: dict[int, float] = defaultdict(float)
    metric_nodes: dict[int, tuple[int, str, str, str]] = {}
    total_cpu = total_gc = total_run = 0.0
    for line in _lines(path):
        try:
            ev = json.loads(line)
        except ValueError:  # the last line of a log still being written
            continue
        kind = ev.get("Event", "")
        if kind.endswith("SQLExecutionStart"):
            eid = ev["executionId"]
            executions[eid] = {"desc": ev.get("description", ""), "start": ev.get("time", 0), "end": None}
            nodes: list[tuple[str, str, int, str]] = []
            _walk(ev.get("sparkPlanInfo", {}), None, nodes)
            for label, mname, aid, mtype in nodes:
                metric_nodes[aid] = (eid, label, mname, mtype)
        elif kind.endswith("SQLAdaptiveExecutionUpdate"):
            eid = ev["executionId"]
            nodes = []
            _walk(ev.get("sparkPlanInfo", {}), None, nodes)
            for label, mname, aid, mtype in nodes:
                metric_nodes[aid] = (eid, label, mname, mtype)
        elif kind.endswith("SQLExecutionEnd"):
            if ev["executionId"] in executions:
                executions[ev["executionId"]]["end"] = ev.get("time", 0)
        elif kind == "SparkListenerJobStart":
            eid = (ev.get("Properties") or {}).get("spark.sql.execution.id")
            if eid is not None:
                job_exec[ev["Job ID"]] = int(eid)
                for sid in ev.get("Stage IDs", []):
                    stage_exec[sid] = int(eid)
        elif kind == "SparkListenerTaskEnd":
            m = ev.get("Task Metrics") or {}
            cpu = m.get("Executor CPU Time", 0) / 1e9
            total_cpu += cpu
            total_gc += m.get("JVM GC Time", 0) / 1e3
            total_run += m.get("Executor Run Time", 0) / 1e3
            eid = stage_exec.get(ev.get("Stage ID"))
            if eid is not None:
                exec_cpu[eid] += cpu
                exec_run[eid] += m.get("Executor Run Time", 0) / 1e3
        elif kind == "SparkListenerStageCompleted":
            for a in ev["Stage Info"].get("Accumulables", []):
                try:
                    accum[a["ID"]] += float(a["Value"])
                except (KeyError, TypeError, ValueError):
                    pass
        elif kind.endswith("SQLDriverAccumUpdates") or kind == "SparkListenerDriverAccumUpdates":
            for aid, value in ev.get("accumUpdates", []):
                accum[aid] += float(value)
    print(f"tasks: CPU {total_cpu:.1f} s, run {total_run:.1f} s, JVM GC {total_gc:.1f} s; "
          f"{len(executions)} SQL executions")
    print("\n== SQL executions by executor CPU ==")
    rows = sorted(executions.items(), key=lambda kv: -exec_cpu.get(kv[0], 0))
    for eid, e in rows[:top]:
        wall = ((e["end"] or e["start"]) - e["start"]) / 1000
        desc = e["desc"].replace("\n", " ")[:110]
        print(f"{eid:4d} cpu {exec_cpu.get(eid, 0):7.1f} s  run {exec_run.get(eid, 0):7.1f} s  wall {wall:6.1f} s  {desc}")
    print("\n== operator time metrics (summed over tasks) ==")
    timed = []
    for aid, (eid, label, mname, mtype) in metric_nodes.items():
        if mtype in TIME_METRIC_TYPES and accum.get(aid):
            secs = accum[aid] / (1e9 if mtype == "nsTiming" else 1e3)
            timed.append((secs, eid, label, mname))
    for secs, eid, label, mname in sorted(timed, reverse=True)[:top]:
        print(f"{secs:7.1f} s  exec {eid:4d}  {mname:<28} {label[:150]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    analyze(args.log, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
