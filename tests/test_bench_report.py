"""The bench report's issue #22 rows: per-round ratio spreads, the targets, the CPU split."""

from __future__ import annotations

from typing import Any

from tests.bench import bench_report
from tests.bench.bench_cases import CASES_BY_NAME, GiB
from tests.bench.bench_measure import thread_group

Run = dict[str, Any]


def _run(case: str, config: str, round_no: int, **fields: Any) -> Run:
    return {"case": case, "config": config, "round": round_no, "ok": True, **fields}


def test_ratio_targets_show_the_per_round_spread_beside_the_ratio_of_medians() -> None:
    runs = [
        _run("small-s3", "unistore", 0, objps=900.0),
        _run("small-s3", "obstore", 0, objps=1000.0),
        _run("small-s3", "unistore", 1, objps=1300.0),
        _run("small-s3", "obstore", 1, objps=1000.0),
        _run("small-s3", "unistore", 2, objps=1100.0),
        _run("small-s3", "obstore", 2, objps=1000.0),
        _run("small-s3", "obstore", 3, objps=5000.0),  # no unistore run in round 3: no ratio
    ]
    data = bench_report.Runs(runs, 2)
    assert bench_report.round_ratios(data, "small-s3", "unistore", "obstore", "objps") == (0.9, 1.3)
    target = bench_report.ratio_target(data, "t", "small-s3", "unistore", "obstore", "objps", 1.0, True)
    assert target.measured == 1100.0 / 1000.0 and target.verdict == "PASS"
    assert "1.10x (0.90–1.30)" in target.row()


def test_issue22_targets_are_rows_of_their_own_at_1x() -> None:
    runs: list[Run] = []
    for n in range(2):
        runs += [
            _run("download256-azure", "unistore", n, mibps=236.0),
            _run("download256-azure", "obstore", n, mibps=302.0),
            _run("small-s3", "unistore", n, objps=1077.0, cpu_s=0.4, server_cpu_s={"s3": 1.0}, objects=1000),
            _run("small-s3", "obstore", n, objps=1077.0, cpu_s=0.5, server_cpu_s={"s3": 1.0}, objects=1000),
        ]
    plan = [(CASES_BY_NAME["download256-azure"], ["unistore", "obstore"]),
            (CASES_BY_NAME["small-s3"], ["unistore", "obstore"])]
    rows = {t.what: t for t in bench_report.targets(bench_report.Runs(runs, 2), plan)}
    azure = rows["download256-azure: MiB/s vs obstore (#22)"]
    assert azure.limit == 1.0 and azure.verdict == "**FAIL**"  # 0.78x: what the outside bench saw
    assert rows["download256-azure: MiB/s vs obstore"].limit == 0.9  # issue #10's row stays
    assert rows["small-s3: obj/s vs obstore (#22)"].verdict == "PASS"
    cpu = rows["small-s3: client + server CPU per object vs obstore (#22)"]
    assert cpu.measured == 1.4 / 1.5 and cpu.verdict == "PASS"


def test_cpu_split_shows_md5_and_crc64_side_by_side_with_the_hashing_share() -> None:
    def upload(config: str, kind: str, parts: float) -> Run:
        return _run("upload256-azure", config, 0, bytes=GiB // 4, cpu_s=0.25 * (0.7 + parts),
                    thread_cpu_s={"loop": 0.175, "parts": 0.25 * parts, "executor": 0.0, "other": 0.0},
                    digests={"azure": kind}, hash_cpu_s_per_gib={kind: 1.6 if kind == "md5" else 0.1})

    runs = [upload("unistore", "md5", 1.85), upload("unistore-crc64", "crc64", 0.35)]
    table = bench_report.cpu_split_table(
        bench_report.Runs(runs, 2), [(CASES_BY_NAME["upload256-azure"], ["unistore", "unistore-crc64"])]
    )
    md5_row, crc_row = (line for line in table.splitlines() if line.startswith("| upload256-azure"))
    assert md5_row.split(" | ")[2:8] == ["md5", "2.55", "0.70", "1.85", "1.60", "0.25"]
    assert crc_row.split(" | ")[2:8] == ["crc64", "1.05", "0.70", "0.35", "0.10", "0.25"]


def test_threads_are_grouped_by_their_names() -> None:
    names = {2: "unistore-parts_0", 3: "asyncio_1", 4: "tokio-runtime-worker"}
    assert [thread_group(tid, 1, names) for tid in (1, 2, 3, 4, 5)] == [
        "loop", "parts", "executor", "other", "other"
    ]
