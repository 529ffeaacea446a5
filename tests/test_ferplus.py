import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench import CLASS_NAMES
from bench.cli import cli
from bench.data import load_data
from bench.data.checks import data_report
from bench.data.dataset import FerData
from bench.data.ferplus import (
    FERPLUS_CLASS_NAMES,
    TO_BENCH,
    VOTE_COLUMNS,
    align_votes,
    crossentropy_targets,
    drop_reasons,
    ferplus_report,
    find_votes,
    majority_labels,
    read_votes,
    relabel,
)
from bench.errors import BenchError
from tests.conftest import pixels, write_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_FER = SHARED / "fer2013" / "fer2013.csv.gz"
REAL_VOTES = SHARED / "ferplus" / "fer2013plus_votes.csv"

HEADER = "ferplus_image,match_mae," + ",".join(VOTE_COLUMNS)
# FER+ column order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
HAPPY_9 = [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]
NEUTRAL_8 = [8, 0, 0, 1, 0, 0, 1, 0, 0, 0]
ANGER_6 = [0, 0, 0, 0, 6, 4, 0, 0, 0, 0]
CONTEMPT_6 = [2, 0, 0, 0, 0, 0, 0, 6, 2, 0]
TIE_5_5 = [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
UNKNOWN_6 = [0, 0, 0, 0, 0, 0, 0, 0, 6, 4]
NO_VOTES = None


def write_votes(path: Path, rows) -> Path:
    """A votes CSV in the shared file's layout; a None row has no FER+ image (blank cells)."""
    lines = [
        ",,," + "," * 8 if r is None else f"fer{i:07d}.png,1.3," + ",".join(map(str, r)) for i, r in enumerate(rows)
    ]
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return path


def write_fer(path: Path, labels_usage) -> Path:
    return write_rows(path, [f"{label},{pixels(i)},{usage}" for i, (label, usage) in enumerate(labels_usage)])


# FER2013 label, Usage, FER+ votes; FER2013 ids: angry 0, happy 3, sad 4, neutral 6
ROWS = [
    (3, "Training", HAPPY_9),  # kept: happy, agrees
    (4, "Training", NEUTRAL_8),  # kept: neutral, disagrees
    (0, "Training", ANGER_6),  # kept: angry, agrees
    (6, "Training", CONTEMPT_6),  # kept: contempt (class 7)
    (3, "Training", TIE_5_5),  # dropped: no strict majority
    (3, "Training", UNKNOWN_6),  # dropped: unknown wins
    (3, "Training", NO_VOTES),  # dropped: no votes
    (3, "PublicTest", HAPPY_9),  # kept, agrees
    (6, "PublicTest", TIE_5_5),  # dropped
    (6, "PrivateTest", NEUTRAL_8),  # kept, agrees
    (0, "PrivateTest", NO_VOTES),  # dropped: no votes
]


@pytest.fixture
def fer_and_votes(tmp_path):
    csv = write_fer(tmp_path / "fer.csv", [(label, usage) for label, usage, _ in ROWS])
    votes = write_votes(tmp_path / "votes.csv", [v for _, _, v in ROWS])
    return csv, votes


def test_class_order_keeps_fer2013_ids_and_maps_every_ferplus_column():
    assert FERPLUS_CLASS_NAMES[:7] == CLASS_NAMES and FERPLUS_CLASS_NAMES[7] == "contempt"
    mapped = [FERPLUS_CLASS_NAMES[i] for i in TO_BENCH]
    assert mapped == ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]


@pytest.mark.parametrize(
    "votes, label",
    [
        (HAPPY_9, "happy"),
        ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], "neutral"),  # single votes are outliers: 5 of the 5 left
        ([6, 0, 0, 0, 0, 0, 0, 0, 4, 0], "neutral"),  # unknown counts in the total but does not win
        (CONTEMPT_6, "contempt"),
        (ANGER_6, "angry"),
        (TIE_5_5, None),  # a tie is no strict majority
        ([5, 0, 0, 0, 0, 0, 0, 0, 5, 0], None),  # half is not a majority
        ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], None),
        (UNKNOWN_6, None),
        ([2, 0, 0, 0, 0, 0, 0, 0, 0, 8], None),  # not a face
        ([1] * 10, None),  # every vote an outlier
        ([0] * 10, None),
    ],
)
def test_majority_rule(votes, label):
    keep, labels = majority_labels(np.array([votes]))
    assert bool(keep[0]) == (label is not None)
    if label is not None:
        assert FERPLUS_CLASS_NAMES[labels[0]] == label


def _bench_order(ferplus_order: dict[str, float]) -> list[float]:
    out = [0.0] * 8
    for name, p in ferplus_order.items():
        out[TO_BENCH[VOTE_COLUMNS.index(name)]] = p
    return out


@pytest.mark.parametrize(
    "votes, expected",
    [
        ([6, 2, 1, 1, 0, 0, 0, 0, 0, 0], {"neutral": 1.0}),  # 6 of 8 left already reaches 75 %
        ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], {"neutral": 5 / 8, "happiness": 3 / 8}),
        ([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], {"neutral": 0.4, "happiness": 0.3, "surprise": 0.3}),  # a tie is taken whole
        ([3, 3, 2, 2, 0, 0, 0, 0, 0, 0], None),  # the tie at 2 makes 4 emotions
        ([6, 0, 0, 0, 0, 0, 0, 0, 4, 0], {"neutral": 1.0}),  # unknown ends the target, 6 > half
        ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], None),  # unknown ends it at 4 of 10: not above half
        ([6, 0, 0, 2, 0, 0, 0, 0, 3, 0], {"neutral": 1.0}),  # unknown at 3 keeps sadness at 2 out
        ([4, 0, 0, 2, 0, 0, 0, 0, 3, 0], None),  # ... and so leaves 4 of 9
        ([6, 0, 0, 2, 0, 0, 0, 0, 2, 0], {"neutral": 0.75, "sadness": 0.25}),  # tied with unknown: taken first
        ([5, 0, 0, 0, 0, 0, 0, 0, 0, 5], None),  # NF ties the top: 5 of 10 is not above half
        ([0, 0, 0, 0, 0, 0, 0, 2, 6, 2], None),  # unknown is the top
        ([0, 0, 0, 0, 0, 3, 0, 7, 0, 0], {"contempt": 0.7, "disgust": 0.3}),
        ([1] * 10, None),
    ],
)
def test_crossentropy_rule(votes, expected):
    keep, targets = crossentropy_targets(np.array([votes]))
    assert bool(keep[0]) == (expected is not None)
    if expected is None:
        assert not targets[0].any()
    else:
        np.testing.assert_allclose(targets[0], _bench_order(expected), atol=1e-6)


def test_soft_targets_sum_to_one_and_agree_with_the_majority_on_random_votes(rng):
    counts = rng.multinomial(10, [0.35, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.04, 0.03, 0.03], size=3000)
    keep, targets = crossentropy_targets(counts)
    assert 0 < keep.sum() < len(counts)
    np.testing.assert_allclose(targets[keep].sum(axis=1), 1.0, atol=1e-6)
    assert (targets[keep] >= 0).all() and not targets[~keep].any()
    # with 10 taggers a strict majority is always the first level the soft rule takes, and enough
    majority, labels = majority_labels(counts)
    assert (keep[majority]).all()
    assert (targets[majority].argmax(axis=1) == labels[majority]).all()


def test_read_votes_blank_and_zero_rows_have_no_votes_and_other_columns_are_ignored(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text(
        "Usage,Image name," + ",".join(VOTE_COLUMNS) + "\n"  # microsoft/FERPlus's fer2013new.csv header
        "Training,fer0.png,0,9,0,0,0,0,0,0,1,0\n"
        "Training,,,,,,,,,,,\n"
        "Training,,0,0,0,0,0,0,0,0,0,0\n"
    )
    votes = read_votes(path)
    assert votes.counts.shape == (3, 10) and votes.counts[0, 1] == 9
    assert votes.present.tolist() == [True, False, False]


@pytest.mark.parametrize(
    "body, message",
    [
        ("a,b\n1,2\n", "missing vote column(s) neutral"),
        (HEADER + "\nx,1," + "0,9,0,0,0,0,0,0,x,0\n", "line 2: votes must be ten non-negative integers"),
        (HEADER + "\nx,1," + "0,9,0,0,0,0,0,0,-1,0\n", "line 2: votes must be ten non-negative integers"),
        (HEADER + "\nx,1," + "0,9,0,0,0,0,0,0,,0\n", "or all ten blank"),
    ],
)
def test_bad_votes_files_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "v.csv"
    path.write_text(body)
    with pytest.raises(BenchError) as err:
        read_votes(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_misaligned_votes_are_one_line_errors(tmp_path, fer_and_votes):
    csv, votes = fer_and_votes
    data = load_data(csv)
    with pytest.raises(BenchError, match="does not exist; pass --votes PATH"):
        align_votes(data, tmp_path / "nope.csv")
    short = write_votes(tmp_path / "short.csv", [v for _, _, v in ROWS][:-1])
    with pytest.raises(BenchError, match=r"has 10 vote rows but .* has 11 images; .* one line per CSV row"):
        align_votes(data, short)
    with pytest.raises(BenchError, match="has 10 vote rows"):
        load_data(csv, labels="ferplus", votes=short)


def test_rows_dropped_by_skip_bad_or_an_image_folder_cannot_take_votes(tmp_path, fer_and_votes):
    csv, votes = fer_and_votes
    broken = tmp_path / "broken.csv"
    broken.write_text(csv.read_text().replace(pixels(2), pixels(2, 5)))
    with pytest.raises(BenchError, match=r"1 bad row\(s\) were dropped \(--skip-bad\)"):
        load_data(broken, skip_bad=True, labels="ferplus", votes=votes)
    data = load_data(csv)
    folder = FerData(data.images, data.labels, data.splits, source=str(tmp_path), protocol="folders")
    with pytest.raises(BenchError, match="not an image folder"):
        align_votes(folder, votes)


def test_relabel_majority(fer_and_votes):
    csv, votes = fer_and_votes
    data = load_data(csv, labels="ferplus", votes=votes)
    assert data.class_names == FERPLUS_CLASS_NAMES and data.label_set == "ferplus" and data.targets is None
    assert [FERPLUS_CLASS_NAMES[i] for i in data.labels] == [
        "happy", "neutral", "angry", "contempt", "happy", "neutral"
    ]  # fmt: skip
    assert data.split_sizes() == {"train": 4, "val": 1, "test": 1}
    assert data.images[4].max() == 7 and data.images[5].max() == 9  # the images travel with their votes
    assert "dropped 5 of 11 rows (no FER+ votes: 2, unknown or not a face: 1, no clear majority: 2)" in data.protocol


def test_relabel_crossentropy_trains_on_distributions_and_evaluates_on_majority(tmp_path):
    rows = [
        (6, "Training", [5, 3, 2, 0, 0, 0, 0, 0, 0, 0]),  # no majority; the soft rule keeps it
        (3, "Training", HAPPY_9),
        (6, "PublicTest", [5, 3, 2, 0, 0, 0, 0, 0, 0, 0]),  # no majority: dropped from evaluation
        (6, "PrivateTest", [6, 0, 0, 0, 0, 0, 0, 0, 4, 0]),
    ]
    csv = write_fer(tmp_path / "f.csv", [(label, usage) for label, usage, _ in rows])
    votes = write_votes(tmp_path / "v.csv", [v for _, _, v in rows])
    data = load_data(csv, labels="ferplus", votes=votes, targets="crossentropy")
    assert data.split_sizes() == {"train": 2, "val": 0, "test": 1}
    np.testing.assert_allclose(data.targets[0], _bench_order({"neutral": 5 / 8, "happiness": 3 / 8}), atol=1e-6)
    np.testing.assert_allclose(data.targets[1], np.eye(8)[3], atol=1e-6)
    np.testing.assert_array_equal(data.targets[2], np.eye(8)[6])  # evaluation: one-hot majority
    assert data.labels.tolist() == [6, 3, 6]
    assert "crossentropy rule, 2 training rows kept" in data.protocol
    majority = load_data(csv, labels="ferplus", votes=votes)
    assert majority.fingerprint() != data.fingerprint()


def test_default_load_is_unchanged_fer2013(fer_and_votes):
    csv, _ = fer_and_votes
    data = load_data(csv)
    assert data.label_set == "fer2013" and data.targets is None and data.class_names == CLASS_NAMES
    h = hashlib.sha256()
    h.update(data.images.tobytes())
    h.update(data.labels.astype("<i8").tobytes())
    h.update("\n".join(data.splits.tolist()).encode())
    assert data.fingerprint() == h.hexdigest()  # runs logged before FER+ keep their fingerprints


def test_load_data_finds_votes_beside_the_csv_or_in_a_sibling_ferplus_folder(tmp_path):
    rows = [(3, "Training", HAPPY_9), (6, "PrivateTest", NEUTRAL_8)]
    (tmp_path / "fer2013").mkdir()
    csv = write_fer(tmp_path / "fer2013" / "fer.csv", [(label, u) for label, u, _ in rows])
    with pytest.raises(BenchError, match="labels='ferplus' needs FER\\+ votes and none were found.*--votes PATH"):
        load_data(csv, labels="ferplus")
    (tmp_path / "ferplus").mkdir()
    sibling = write_votes(tmp_path / "ferplus" / "fer2013plus_votes.csv", [v for _, _, v in rows])
    assert find_votes(csv) == sibling
    assert load_data(csv, labels="ferplus").labels.tolist() == [3, 6]
    beside = write_votes(tmp_path / "fer2013" / "fer2013plus_votes.csv", [v for _, _, v in rows])
    assert find_votes(csv) == beside
    assert find_votes("synthetic:100") is None


def test_bad_label_set_and_targets_are_errors(fer_and_votes):
    csv, votes = fer_and_votes
    with pytest.raises(BenchError, match="labels must be one of fer2013, ferplus; received labels='fer'"):
        load_data(csv, labels="fer")
    with pytest.raises(BenchError, match="need labels='ferplus'"):
        load_data(csv, targets="crossentropy")
    with pytest.raises(BenchError, match="targets must be one of majority, crossentropy; received targets='soft'"):
        load_data(csv, labels="ferplus", votes=votes, targets="soft")
    with pytest.raises(BenchError, match="already carries ferplus labels"):
        relabel(load_data(csv, labels="ferplus", votes=votes), votes)


def test_targets_must_match_the_class_count():
    images = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(BenchError, match=r"targets must be \(N, 7\)"):
        FerData(images, np.zeros(2, np.int64), np.array(["train"] * 2), "x", "p", targets=np.zeros((2, 8)))


def test_ferplus_report_counts_drops_and_agreement(fer_and_votes):
    csv, votes = fer_and_votes
    data = load_data(csv)
    report = ferplus_report(data, votes)
    assert report["class_counts"]["train"] == [1, 0, 0, 1, 0, 0, 1, 1]
    assert report["kept"] == {"train": 4, "val": 1, "test": 1, "all": 6}
    assert report["rows_without_votes"] == {"train": 1, "val": 0, "test": 1, "all": 2}
    assert report["dropped"]["train"] == {"no FER+ votes": 1, "unknown or not a face": 1, "no clear majority": 1}
    assert report["agreement_with_fer2013"]["train"] == pytest.approx(2 / 4)
    assert report["agreement_without_contempt"]["train"] == pytest.approx(2 / 3)
    assert report["agreement_with_fer2013"]["all"] == pytest.approx(4 / 6)
    assert report["fer2013_by_ferplus"][4][6] == 1  # FER2013 sad, FER+ neutral
    assert list(drop_reasons(read_votes(votes))[4:7]) == ["no clear majority", "unknown or not a face", "no FER+ votes"]
    assert "ferplus" not in data_report(data) and data_report(data, votes)["ferplus"]["kept"]["all"] == 6


def test_cli_data_check_reports_ferplus_when_given_or_found(tmp_path, fer_and_votes):
    csv, votes = fer_and_votes
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(csv), "--votes", str(votes)])
    assert result.exit_code == 0, result.output
    assert "FER+ labels (majority vote over 8 classes)" in result.output and "contempt" in result.output
    assert "rows without FER+ votes: 2 (train 1, val 0, test 1)" in result.output
    assert "FER+ majority = FER2013 label: train 50.0%" in result.output
    assert "FER+" not in CliRunner().invoke(cli, ["data", "check", "--data", str(csv)]).output
    votes.rename(tmp_path / "fer2013plus_votes.csv")
    report = json.loads(CliRunner().invoke(cli, ["data", "check", "--data", str(csv), "--format", "json"]).output)
    assert report["ferplus"]["kept"]["all"] == 6


def test_cli_data_check_misaligned_votes_fail_when_asked_for_and_are_noted_when_found(tmp_path, fer_and_votes):
    csv, _ = fer_and_votes
    short = write_votes(tmp_path / "fer2013plus_votes.csv", [HAPPY_9])
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(csv), "--votes", str(short)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "has 1 vote rows" in result.output
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(csv)])
    assert result.exit_code == 0 and "FER+: not checked (" in result.output and "has 1 vote rows" in result.output


@pytest.mark.skipif(not (REAL_FER.exists() and REAL_VOTES.exists()), reason="the real FER2013 / FER+ files are absent")
def test_real_votes_align_with_the_real_csv():
    data = load_data(REAL_FER)
    votes = align_votes(data, REAL_VOTES)
    assert len(votes) == 35887 and int(votes.present.sum()) == 35710  # both from ferplus/README.md
    # README's alignment check: plain FER+ argmax (contempt excluded) = FER2013 label on 63.2 % of 35,483 rows
    argmax = TO_BENCH[votes.counts[:, :8].argmax(axis=1)]
    rows = votes.present & (argmax != 7)
    assert rows.sum() == 35483 and np.mean(argmax[rows] == data.labels[rows]) == pytest.approx(0.632, abs=0.0005)
    report = ferplus_report(data, votes)
    assert report["rows_without_votes"] == {"train": 151, "val": 10, "test": 16, "all": 177}
    assert report["kept"] == {"train": 25045, "val": 3191, "test": 3137, "all": 31373}
