"""Plain-text rendering of what the commands return (the CLI prints these strings)."""

from __future__ import annotations

from bench import run_record as rec


def text_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain-text table: one column per header, each as wide as its widest cell; ``align`` is one
    letter per column, ``l`` or ``r`` (default: the first left, the rest right, as numbers read)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def fmt(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True))

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in cells)])


def render_data_report(r: dict) -> str:
    counts = r["class_counts"]
    rows = [
        [c, *(counts[s][i] for s in ("train", "val", "test")), sum(counts[s][i] for s in counts)]
        for i, c in enumerate(r["class_names"])
    ]
    rows.append(["total", *(sum(counts[s]) for s in ("train", "val", "test")), r["n_images"]])
    weights = ", ".join(f"{c} {w:.3f}" for c, w in zip(r["class_names"], r["balanced_class_weights"], strict=True))
    lines = [
        f"source: {r['source']}",
        f"protocol: {r['protocol']}",
        f"fingerprint: {r['fingerprint'][:16]}",
        "",
        text_table(["class", "train", "val", "test", "all"], rows),
        "",
        f"imbalance ratio (train, largest/smallest class): {r['imbalance_ratio']:.1f}",
        f"balanced class weights (train): {weights}",
        f"identical-image groups: {r['duplicate_groups']} ({r['duplicate_images']} images); "
        f"{r['duplicate_groups_across_splits']} span splits; {r['duplicate_groups_conflicting_labels']} have "
        "conflicting labels",
        f"training images also in val/test (dropped by data.dedupe = true): {r['train_images_also_in_val_or_test']}",
        f"blank (constant) images: {r['blank_images']} ({r['all_black_images']} all black)",
    ]
    if r["n_converted"]:
        lines.append(f"converted to 48x48 grayscale while loading: {r['n_converted']}")
    if r["dropped"]:
        lines.append("dropped (--skip-bad): " + ", ".join(f"{k}: {v}" for k, v in r["dropped"].items()))
    if "ferplus" in r:
        lines += ["", render_ferplus_report(r["ferplus"])]
    return "\n".join(lines)


def render_ferplus_report(f: dict) -> str:
    """The FER+ section of ``bench data check``: majority-vote counts, what was dropped, agreement."""
    if "skipped" in f:
        return f"FER+: not checked ({f['skipped']})"
    splits = ("train", "val", "test")
    counts = f["class_counts"]
    rows = [[c, *(counts[s][i] for s in splits)] for i, c in enumerate(f["class_names"])]
    rows = [[*r, sum(r[1:])] for r in rows]
    rows.append(["kept", *(f["kept"][s] for s in (*splits, "all"))])
    for reason in f["dropped"]["all"]:
        rows.append([f"dropped: {reason}", *(f["dropped"][s][reason] for s in (*splits, "all"))])
    agree = f["agreement_with_fer2013"]
    agree_nc = f["agreement_without_contempt"]
    return "\n".join(
        [
            f"FER+ labels (majority vote over 8 classes) from {f['votes_source']}",
            "",
            text_table(["class", "train", "val", "test", "all"], rows),
            "",
            f"rows without FER+ votes: {f['rows_without_votes']['all']} "
            f"(train {f['rows_without_votes']['train']}, val {f['rows_without_votes']['val']}, "
            f"test {f['rows_without_votes']['test']})",
            "FER+ majority = FER2013 label: "
            + ", ".join(f"{s} {agree[s]:.1%}" for s in (*splits, "all"))
            + f" (without contempt: all {agree_nc['all']:.1%})",
            f"training rows kept by the crossentropy (soft-target) rule: {f['crossentropy_train_kept']}",
        ]
    )


def model_catalog() -> dict:
    """Backbones with their metadata, parameter count and layer count; heads with a description."""
    from bench.registry import BACKBONES, HEADS

    backbones = []
    for name in BACKBONES.names():
        entry = BACKBONES.get(name)
        size = entry.info["min_size"]
        model = entry.factory(input_shape=(size, size, 3), weights="none")
        backbones.append(
            {
                "name": name,
                "params": int(model.count_params()),
                "min_size": size,
                "imagenet": bool(entry.info["imagenet"]),
                "layers": len(model.layers),
                "normalization": entry.info["normalization"],
            }
        )
    heads = [{"name": n, "description": HEADS.get(n).info.get("description", "")} for n in HEADS.names()]
    return {"backbones": backbones, "heads": heads}


def render_catalog(catalog: dict) -> str:
    rows = [
        [
            b["name"],
            f"{b['params'] / 1e6:.2f}M",
            b["min_size"],
            "yes" if b["imagenet"] else "no",
            b["layers"],
            b["normalization"],
        ]
        for b in catalog["backbones"]
    ]
    heads = [[h["name"], h["description"]] for h in catalog["heads"]]
    return "\n".join(
        [
            "backbones (parameters are the same at 224 px and at the minimum size: convolutional weights do not",
            "depend on the input size)",
            text_table(["name", "params", "min size", "imagenet", "layers", "input normalization"], rows, "lrrrrl"),
            "",
            "heads",
            text_table(["name", "description"], heads, "ll"),
        ]
    )


def summary_line(s) -> str:
    """The one line ``bench run`` prints per run (a :class:`bench.runner.RunSummary`): headline test
    metrics, training time and throughput, the run's id."""
    import math

    from bench.metrics import HEADLINE_METRICS

    m = s.test_metrics
    parts = [f"{k}={m[k]:.4f}" for k in HEADLINE_METRICS if k in m]
    return (
        f"{s.backbone}+{s.head} @{s.image_size}px  "
        + "  ".join(parts)
        + f"  fit={s.train_seconds:.0f}s  "
        + (f"{s.images_per_second:.0f} img/s" if math.isfinite(s.images_per_second) else "img/s not measured")
        + f"  run={s.run_id}"
    )


def render_profiles(results: list[dict]) -> str:
    headers = [
        "model",
        "size",
        "params",
        "GFLOPs/img",
        "train img/s",
        "infer img/s",
        "p50 ms",
        "p95 ms",
        "peak RSS MB",
        ".keras MB",
        "% of peak",
    ]
    rows = [
        [
            f"{r['backbone']}+{r['head']}",
            r["image_size"],
            f"{r[rec.PARAMS_TOTAL] / 1e6:.2f}M",
            f"{r[rec.FLOPS_PER_IMAGE] / 1e9:.3f}" if r[rec.FLOPS_PER_IMAGE] is not None else "-",
            f"{r[rec.TRAIN_IMAGES_PER_SECOND]:.0f}",
            f"{r['infer_images_per_second']:.0f}",
            f"{r[rec.LATENCY_P50]:.1f}",
            f"{r[rec.LATENCY_P95]:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r[rec.KERAS_FILE_MB]:.1f}",
            f"{100 * r['train_fraction_of_peak']:.1f}",
        ]
        for r in results
    ]
    peak = results[0]["machine_peak_gflops"] if results else float("nan")
    return "\n".join(
        [
            text_table(headers, rows),
            "",
            f"FLOPs: {results[0]['flops_method'] if results else ''}; training ~3x forward. Machine practical peak "
            f"(2048x2048 float32 matmul): {peak:.0f} GFLOP/s. Peak RSS is the whole process's so far.",
        ]
    )


__all__ = ["model_catalog", "render_catalog", "render_data_report", "render_profiles", "summary_line"]


def render_predictions(report, fmt: str) -> str:
    """Per-face predictions of ``bench predict`` as a table, JSON (faces, inputs, timing) or CSV (one
    row per face with a probability for each of the model's classes)."""
    import csv
    import io
    import json
    from dataclasses import asdict

    if fmt == "json":
        return json.dumps(
            {
                "class_names": list(report.class_names),
                "faces": [asdict(f) for f in report.faces],
                "inputs": [asdict(i) for i in report.inputs],
                "video": {"frames": report.video_frames, "fps": report.video_fps if report.video_frames else None},
                "stage_ms": report.stage_summary(),
            },
            indent=2,
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["source", "frame", "x", "y", "w", "h", "emotion", "confidence", "smoothed_emotion"]
            + [f"p_{c}" for c in report.class_names]
        )
        for f in report.faces:
            writer.writerow(
                [f.source, "" if f.frame is None else f.frame, *f.box, f.emotion, f"{f.confidence:.6f}"]
                + [f.smoothed_emotion or ""]
                + [f"{f.probabilities[c]:.6f}" for c in report.class_names]
            )
        return buffer.getvalue().rstrip("\n")
    rows = [
        [
            f.source,
            "" if f.frame is None else f.frame,
            " ".join(str(v) for v in f.box),
            f.smoothed_emotion or f.emotion,
            f"{f.confidence:.2f}",
        ]
        for f in report.faces
    ]
    if not rows:
        return "no faces"
    return text_table(["source", "frame", "box (x y w h)", "emotion", "confidence"], rows, align="lrlll")


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or unknown
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(status: dict) -> str:
    """One line for a :class:`bench.callbacks.Progress` status: phase, epoch, step, speed, loss,
    latest validation macro-F1, elapsed and estimated time left."""
    parts = [f"{status['phase']} epoch {status['epoch']}/{status['epochs']}"]
    if status.get("step") and status.get("steps"):
        parts[0] += f" step {status['step']}/{status['steps']}"
    speed, loss, f1 = status["images_per_second"], status["loss"], status[rec.VAL_MACRO_F1]
    if speed == speed:
        parts.append(f"{speed:.0f} img/s")
    if loss == loss:
        parts.append(f"loss {loss:.3f}")
    if f1 == f1:
        parts.append(f"val macro-F1 {f1:.3f}")
    parts.append(f"{_clock(status['elapsed'])} elapsed, ETA {_clock(status['eta'])}")
    return " | ".join(parts)


def format_trial(status: dict) -> str:
    """One finished ``bench tune`` trial: its outcome, the best so far and its parameters."""
    head = f"trial {status['number']} [{status['done']}/{status['total']}]"
    if status["state"] == "complete":
        outcome = f"val macro-F1 {status['value']:.4f}"
    elif status["state"] == "pruned":
        outcome = "pruned" + (f" after epoch {status['last_step'] + 1}" if status["last_step"] is not None else "")
    else:
        outcome = f"{status['state']}: {status['failure'] or 'no reason recorded'}"
    best = (
        f"best {status['best_value']:.4f} (trial {status['best_number']})"
        if status["best_value"] is not None
        else "no trial complete yet"
    )
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in status["params"].items())
    return f"{head} {outcome} | {best} | {params}"
