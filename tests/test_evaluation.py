import json

import numpy as np
import pytest

from seqvision.evaluation import classification_metrics, plot_training_curves, save_metrics


def test_metrics_from_known_probabilities():
    labels = ["a", "b", "c"]
    y_true = np.array([0, 0, 1, 1, 2, 2])
    # Predictions: a, b, b, b, c, a  -> 4/6 correct.
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.1, .8, .1], [.2, .7, .1], [.1, .1, .8], [.5, .1, .4]])
    m = classification_metrics(y_true, probs, labels, top_k=(1, 2))
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["mean_class_accuracy"] == pytest.approx(np.mean([0.5, 1.0, 0.5]))
    assert m["top_k"]["top_2"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["a"]["support"] == 2
    json.dumps(m)


def test_mean_class_accuracy_ignores_absent_classes_and_shape_errors():
    m = classification_metrics([0, 0, 0, 1], np.eye(3)[[0, 0, 1, 1]], ["x", "y", "z"])
    assert m["mean_class_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="probs"):
        classification_metrics([0, 1], np.ones((2, 2)), ["x", "y", "z"])


def test_saved_files_and_plots(tmp_path):
    m = classification_metrics([0, 1], np.eye(2), ["x", "y"])
    paths = save_metrics(m, tmp_path, prefix="test")
    assert json.loads(paths["metrics"].read_text())["accuracy"] == 1.0
    assert paths["confusion_png"].read_bytes()[:4] == b"\x89PNG"
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.4,1.1\n1,0.7,0.8,0.6,0.9\n")
    png = plot_training_curves(history, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp*"))


def test_saving_plots_leaves_the_pyplot_backend_alone(tmp_path):
    """A notebook's inline backend survives train / evaluate / anomaly plots (no matplotlib.use)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); "
            "from seqvision.evaluation import plot_confusion_matrix; "
            "from seqvision.anomaly_report import plot_roc_curves; import numpy as np; "
            f"plot_confusion_matrix([[3, 1], [0, 4]], ['a', 'b'], r'{tmp_path / 'cm.png'}'); "
            f"plot_roc_curves({{'test': (np.arange(6.0), np.array([0, 0, 1, 0, 1, 1]))}}, r'{tmp_path / 'roc.png'}'); "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "roc.png").stat().st_size > 1000
