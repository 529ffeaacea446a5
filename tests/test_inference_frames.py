"""The one per-frame pipeline bench predict and bench live share (bench.inference.frames)."""

import keras
import numpy as np
import pytest

from bench import CLASS_NAMES
from bench.data.synthetic import face_frame
from bench.inference.classifier import FaceClassifier
from bench.inference.faces import Box
from bench.inference.frames import FRAME_STAGES, FaceOptions, FramePipeline
from bench.inference.predict import PredictOptions, predict_files
from bench.inference.smoothing import LabelSmoother
from bench.models import build_model


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    return FaceClassifier(model)


def test_a_frame_gives_its_face_timed_stages_and_a_drawn_copy(classifier):
    frame = face_frame()
    result = FramePipeline(classifier)(frame, LabelSmoother(3), draw=True)
    (face,) = result.faces
    assert face.box.iou(Box(200, 100, 144, 144)) > 0.4
    assert face.emotion == max(face.probabilities, key=face.probabilities.get) and set(face.probabilities) == set(
        CLASS_NAMES
    )
    assert face.confidence == pytest.approx(max(face.probabilities.values()))
    assert face.smoothed_emotion == face.shown == face.emotion  # the first frame of a track is its own mode
    assert tuple(result.stage_ms) == FRAME_STAGES and all(ms >= 0 for ms in result.stage_ms.values())
    assert result.annotated.shape == frame.shape and not np.array_equal(result.annotated, frame)
    plain = FramePipeline(classifier)(frame)
    assert plain.annotated is None and plain.faces[0].smoothed_emotion is None
    assert plain.faces[0].probabilities == pytest.approx(face.probabilities, abs=1e-6)


def test_no_detect_takes_the_whole_frame_and_a_blank_frame_has_no_face(classifier):
    whole = FramePipeline(classifier, FaceOptions(detect=False))(face_frame()[100:244, 200:344])
    assert [f.box for f in whole.faces] == [Box(0, 0, 144, 144)] and whole.stage_ms["detect"] == 0.0
    blank = FramePipeline(classifier)(np.full((480, 640), 90, np.uint8))
    assert blank.faces == [] and tuple(blank.stage_ms) == FRAME_STAGES


def test_predict_reports_what_the_shared_pipeline_finds(classifier, tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "face.png"), face_frame())
    report = predict_files(classifier, [str(tmp_path / "face.png")], PredictOptions(margin=0.2, detect_width=0))
    shared = FramePipeline(classifier, PredictOptions(margin=0.2, detect_width=0).faces)(face_frame())
    (record,) = report.faces
    (face,) = shared.faces
    assert record.box == face.box.as_list() and record.emotion == face.emotion
    assert record.probabilities == pytest.approx(face.probabilities, abs=1e-6)
    assert set(report.stage_ms) == {"read", *FRAME_STAGES}
