"""``bench run --queue``: open the matrix's shared queue and print what this worker does, one line a step.

Apart from :mod:`bench.cli.run_cmd` because the serial ``bench run`` must stay as it is and short; the
loop itself is :func:`bench.queue_worker.work` (which prints nothing)."""

from __future__ import annotations

import click

from bench.cli.base import ProgressLine


def open_matrix_queue(requests, url: str, grace: int):
    """The queue of this command's matrix; the heartbeat a few times per grace period (at most 10 s)."""
    from bench.queue_worker import QueueSettings, open_queue

    queue = open_queue(requests, QueueSettings(url, heartbeat=max(1, min(10, grace // 4)), grace=grace))
    click.echo(f"queue: study {queue.name} in {url} ({len(requests)} cells, take-over after {grace} s)")
    return queue


def _describe(event: dict) -> str | None:
    from bench.reports import summary_line

    kind, cell = event["event"], event.get("cell")
    if kind == "claimed":
        takeover = ", taken over from a dead worker" if event["takeover"] else ""
        return f"== {cell}: claimed (queue trial {event['trial']}{takeover})"
    if kind == "resumed" and event.get("finished"):
        return f"{cell}: run {event['run_id']} had finished; marked done"
    if kind == "resumed":
        return f"{cell}: resuming run {event['run_id']} from its last epoch checkpoint in {event['folder']}"
    if kind == "restarted":
        return f"{cell}: run {event['run_id']} marked FAILED ({event['why']}); training the cell as a new run"
    if kind == "lost":
        return (
            f"note: {cell}: this worker lost its lease (no heartbeat for the grace period); "
            "the queue's next claimant checks its run"
        )
    if kind == "finished":
        return summary_line(event["summary"])
    if kind == "waiting":
        c = event["counts"]
        return (
            f"waiting: {c.done}/{c.total} cells done, {c.running} running elsewhere; a cell whose worker is silent "
            f"for {event['grace']} s is taken over here"
        )
    return None


def work_queue(requests, data, queue, show_progress: bool) -> None:
    """Run this worker until the matrix is settled; a cell that failed anywhere, or this worker's lost lease
    on its cell (:class:`bench.queue_worker.LeaseLost`), ends it in one error line."""
    from bench.errors import BenchError
    from bench.queue_worker import work

    click.echo(f"data: {data.source} ({data.split_sizes()}), {data.protocol}")
    lines: list[ProgressLine] = []

    def progress(cell: str):
        if not show_progress:
            return None
        lines.append(ProgressLine(cell))
        return lines[-1]

    def report(event: dict) -> None:
        while lines:
            lines.pop().close()
        text = _describe(event)
        if text:
            click.echo(text)

    try:
        summaries, counts = work(requests, data, queue, report, progress)
    finally:  # a failed cell or a lost lease: its error line starts a line of its own
        for line in lines:
            line.close()
    click.echo(f"queue: {counts.done}/{counts.total} cells done ({len(summaries)} trained by this worker)")
    if counts.failed:
        failed = "; ".join(f"{cell}: {why}" for cell, why in counts.failed.items())
        raise BenchError(f"{len(counts.failed)} cell(s) failed: {failed}")
    if summaries:
        from bench.tracking import ui_command

        click.echo(f"open the runs with: {ui_command(summaries[0].tracking_uri)}")
