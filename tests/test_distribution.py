"""MirroredStrategy over two virtual CPU devices, and two workers on localhost.

Each case runs in fresh Python processes: logical devices and TF_CONFIG must be set
before TensorFlow initialises.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

TOY_DATA = """
import numpy as np, tensorflow as tf
def toy_dataset(global_batch):
    rng = np.random.default_rng(0)
    n, steps = 64, 6
    slope = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = (slope[:, None] * np.linspace(-1, 1, steps) + rng.normal(0, 0.3, (n, steps)))[..., None].astype("float32")
    y = (slope < 0).astype("int32")
    return tf.data.Dataset.from_tensor_slices(({"features": x, "mask": np.ones((n, steps), bool)}, y)).batch(global_batch)
"""

MIRRORED = TOY_DATA + """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from seqvision.models import build_sequence_classifier
from seqvision.fitting import fit_classifier
replicas, out, run_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
keras.utils.set_random_seed(0)
strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
assert strategy.num_replicas_in_sync == replicas
# The global batch (16) is the same for both: 16 on one replica, 8 + 8 on two.
model, _ = fit_classifier(lambda: build_sequence_classifier(1, 2, units=8, dropout=0.0), toy_dataset(16), None,
                          run_dir, epochs=3, lr=1e-2, patience=10, strategy=strategy)
np.save(out, np.concatenate([w.ravel() for w in model.get_weights()]))
"""

WORKER = TOY_DATA + """
import sys
import tensorflow as tf
import keras
from seqvision.fitting import fit_custom_loop, make_strategy
from seqvision.models import build_sequence_classifier
out, run_dir = sys.argv[1], sys.argv[2]
strategy = make_strategy("multiworker")
assert strategy.num_replicas_in_sync == 2
keras.utils.set_random_seed(0)
model, _ = fit_custom_loop(lambda: build_sequence_classifier(1, 2, units=8, dropout=0.0), toy_dataset(16),
                           run_dir, epochs=2, lr=1e-2, strategy=strategy)
np.save(out, np.concatenate([w.ravel() for w in model.get_weights()]))
"""


def _run(script, *args, env=None, timeout=240):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=240):
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"process timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]


@pytest.mark.slow
def test_two_virtual_devices_match_one_device(tmp_path):
    procs = [_run(MIRRORED, n, tmp_path / f"w{n}.npy", tmp_path / f"run{n}") for n in (1, 2)]
    for proc in procs:
        _wait(proc)
    one, two = np.load(tmp_path / "w1.npy"), np.load(tmp_path / "w2.npy")
    initial_gap = np.abs(one).max()
    assert initial_gap > 0
    np.testing.assert_allclose(two, one, atol=2e-5, rtol=1e-4)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_localhost_agree(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(_run(WORKER, tmp_path / f"worker{index}.npy", tmp_path / "run",
                          env={"TF_CONFIG": json.dumps(tf_config)}))
    for proc in procs:
        _wait(proc)
    first, second = np.load(tmp_path / "worker0.npy"), np.load(tmp_path / "worker1.npy")
    np.testing.assert_allclose(first, second, atol=1e-6)
    written = sorted(p.name for p in (tmp_path / "run").iterdir())  # by the chief (worker 0) only
    assert written == ["best.json", "history.csv", "logs", "model.keras", "training_curves.png"]
    assert len(list((tmp_path / "run" / "logs" / "train").glob("events.out.tfevents.*"))) == 1  # TensorBoard
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 3
    # The logged loss is the mean over the global batch, not divided again by the replica count:
    # a 2-class model starts near ln 2.
    first_epoch_loss = float(history[1].split(",")[2])
    assert 0.5 < first_epoch_loss < 1.0


def test_multiworker_without_tf_config_is_a_clear_error(monkeypatch):
    from seqvision.fitting import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multiworker")


def test_custom_loop_adds_the_weight_penalties(tmp_path):
    """fit_custom_loop (the multi-worker path) trains on the model's penalties, as model.fit does:
    with a strong L1 on the head the output kernel shrinks and the logged loss includes it."""
    import keras
    import tensorflow as tf

    from seqvision.fitting import fit_custom_loop
    from seqvision.models import build_sequence_classifier

    namespace = {}
    exec(TOY_DATA, namespace)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])

    def train(l1):
        keras.utils.set_random_seed(0)
        model, _ = fit_custom_loop(lambda: build_sequence_classifier(1, 2, units=8, dropout=0.0, l1=l1),
                                   namespace["toy_dataset"](16), tmp_path / f"run{l1}", epochs=3, lr=1e-2,
                                   strategy=strategy)
        kernel = np.abs(model.get_layer("head_probs").get_weights()[0]).sum()
        first_loss = float((tmp_path / f"run{l1}" / "history.csv").read_text().splitlines()[1].split(",")[2])
        return kernel, first_loss

    kernel_plain, loss_plain = train(0.0)
    kernel_l1, loss_l1 = train(0.5)
    assert kernel_l1 < kernel_plain - 0.5  # Adam moves each of the 16 weights at most ~lr per step
    assert loss_l1 > loss_plain + 0.1
