from autoscaler.decisions import DecisionLog, DecisionRecord


def _record(log: DecisionLog, autoscaler: str, time: float) -> DecisionRecord:
    record = DecisionRecord(
        seq=log.next_seq(),
        time=time,
        autoscaler=autoscaler,
        node_group="default/g",
        from_replicas=1,
        to_replicas=2,
        recommendation=2,
        limited_by=None,
        reasons=("metric → 2",),
    )
    log.append(record)
    return record


def test_the_log_keeps_only_the_newest_records() -> None:
    log = DecisionLog(max_records=3)
    for t in range(5):
        _record(log, "default/a", float(t))
    assert len(log) == 3
    assert [r.time for r in log.query()] == [4.0, 3.0, 2.0]


def test_queries_filter_by_autoscaler_time_sequence_and_limit() -> None:
    log = DecisionLog()
    for t in range(6):
        _record(log, "default/a" if t % 2 else "default/b", float(t))
    assert [r.time for r in log.query(autoscaler="default/a")] == [5.0, 3.0, 1.0]
    assert [r.time for r in log.query(since=4.0)] == [5.0, 4.0]
    assert [r.seq for r in log.query(after_seq=4)] == [6, 5]
    assert len(log.query(limit=2)) == 2
