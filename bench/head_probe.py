"""Quick probe of head settings for the frozen-backbone path on cached embeddings (not a test, not the table).

``seqvision train`` with its defaults caches the frozen ImageNet MobileNetV2 embeddings (and the
flow statistics) of 4 temporal views per clip and trains only a small head on them. This script
builds (or reuses) the same caches for a bench dataset's training AND test clips, then trains the
head of ``build_sequence_classifier`` with the product's optimiser and schedule on all training
clips for a fixed number of epochs (what the refit does) and scores the test clips (the mean over
the 4 views, as ``evaluate`` does by default; ``each`` is the mean accuracy of single views). Many
settings x seeds run in one process in seconds each instead of minutes per row of
``bench/generalisation.py``, so a probe shows which ideas are worth a full row. Probe figures
are not table rows: no validation split, no refit, and the single views here are the cached
shifted ones, not the segment centres of ``evaluate --views 1``.

    python bench/head_probe.py --datasets appear,rotation --seeds 0,1,2,3,4 \
        --settings "{}" '{"feature_diff": false}' '{"l1": 0.1}'

Each setting is a JSON object of ``build_sequence_classifier`` options (and ``epochs``, ``lr``,
``weight_decay``, ``batch_size``) laid over the defaults of the frozen path.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # see generalisation.py
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generalisation  # noqa: E402  (datasets, the shared weights file)

VIEWS = 4


def cached_features(dataset: str, work: Path, overrides: dict | None = None, more_train_seeds=()) -> dict:
    """Cached ``[N, V, T, D]`` features, lengths and label indices of the train and test clips
    (``overrides``: ``VideoTrainConfig`` options of the cache, e.g. ``{"moving_part": true}``;
    ``more_train_seeds``: every clip of the dataset's generator run with these seeds joins the
    training clips, for a learning curve)."""
    from seqvision.backbones import backbone_spec, build_backbone
    from seqvision.datasets import find_clips
    from seqvision.embeddings import get_embedding_cache
    from seqvision.training import (VideoTrainConfig, backbone_identity, backbone_options,
                                    flow_statistics_layer)

    root = generalisation.make_video_set(dataset, work)
    config = VideoTrainConfig(data_dir=str(root / "train"), weights=str(generalisation.WEIGHTS), **(overrides or {}))
    config.img_size = backbone_spec(config.backbone).default_img_size  # as train_video resolves it
    backbone = build_backbone(config.backbone, config.img_size, **backbone_options(config))
    flow_stats = flow_statistics_layer(config)
    labels = sorted({clip.label for clip in find_clips(root / "train")})
    more_roots = [generalisation.make_generator_run(dataset.removesuffix("_wide"), seed, work)
                  for seed in more_train_seeds]
    splits = {"train": [root / "train"] + [r / s for r in more_roots for s in ("train", "test")],
              "test": [root / "test"]}
    out = {"labels": labels, "train_parts": []}  # train_parts: (folder, rows) in the order of the training clips
    for split, folders in splits.items():
        parts = []
        for folder in folders:
            clips = find_clips(folder)
            cache = get_embedding_cache(clips, backbone, backbone_identity(config), config.seq_len, config.img_size,
                                        work / "cache", views=VIEWS, flow_stats=flow_stats)
            rows = cache.rows_for(clips)
            if split == "train":
                start = sum(len(p[2]) for p in parts)
                out["train_parts"].append((str(folder), slice(start, start + len(clips))))
            parts.append((np.asarray(cache.features[rows], np.float32), cache.lengths[rows],
                          np.array([labels.index(clip.label) for clip in clips], np.int32)))
        out[split] = tuple(np.concatenate(arrays) for arrays in zip(*parts))
    return out


def frozen_head_options() -> dict:
    """The head options ``seqvision train`` uses with its default (frozen) backbone."""
    from seqvision.training import VideoTrainConfig, default_head, default_head_l1

    config = VideoTrainConfig(data_dir="")
    return dict(units=config.units, num_layers=config.num_layers, bidirectional=config.bidirectional,
                dropout=config.dropout, head=default_head(config.backbone), feature_diff=config.feature_diff,
                l1=default_head_l1(config.backbone), epochs=config.epochs, weight_decay=config.weight_decay,
                lr=config.lr, batch_size=config.batch_size)


def probe(data: dict, setting: dict, seed: int) -> tuple[float, float]:
    """Train one head on all training clips; returns (mean single-view accuracy, 4-view accuracy)."""
    import keras

    from seqvision.datasets import make_feature_dataset
    from seqvision.fitting import cosine_learning_rate, make_optimizer
    from seqvision.models import build_sequence_classifier

    options = {**frozen_head_options(), **setting}
    epochs, lr, weight_decay, batch = (options.pop(k) for k in ("epochs", "lr", "weight_decay", "batch_size"))
    features, lengths, y = data["train"]
    masks = np.arange(features.shape[2])[None] < lengths[:, None]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    train_ds = make_feature_dataset(features, masks, y, np.arange(len(y)), batch, training=True, seed=seed)
    model = build_sequence_classifier(features.shape[-1], len(data["labels"]), "features", **options)
    model.compile(optimizer=make_optimizer(lr, weight_decay), loss="sparse_categorical_crossentropy")
    model.fit(train_ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_learning_rate(lr, epoch, epochs))])
    test_x, test_len, test_y = data["test"]
    n, views, steps, dim = test_x.shape
    test_mask = np.repeat(np.arange(steps)[None] < test_len[:, None], views, axis=0)
    probs = model.predict({"features": test_x.reshape(n * views, steps, dim), "mask": test_mask},
                          batch_size=256, verbose=0).reshape(n, views, -1)
    single = float((probs.argmax(-1) == test_y[:, None]).mean())
    return single, float((probs.mean(1).argmax(-1) == test_y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="demo,rotation,appear")
    parser.add_argument("--settings", nargs="+", default=["{}"], help="JSON objects of head options")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cache-options", default="{}", help="JSON: VideoTrainConfig options of the cached inputs")
    parser.add_argument("--more-train-seeds", default="",
                        help="Generator seeds (>= 2) whose every clip joins the training clips (a learning curve).")
    parser.add_argument("--work", default="/tmp/seqvision-generalisation", help="Data and caches.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| dataset | setting | each (mean) | 4 views (mean) | 4 views per seed |\n|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        more = [int(s) for s in args.more_train_seeds.split(",") if s]
        data = cached_features(dataset, Path(args.work), json.loads(args.cache_options), more)
        print(f"<!-- {dataset}: {len(data['train'][2])} training clips, {len(data['test'][2])} test clips -->")
        for text in args.settings:
            setting = json.loads(text)
            scores = np.array([probe(data, setting, seed) for seed in seeds])
            print(f"| {dataset} | `{json.dumps(setting)}` | {scores[:, 0].mean():.3f} | {scores[:, 1].mean():.3f} | "
                  f"{', '.join(f'{s:.3f}' for s in scores[:, 1])} |", flush=True)


if __name__ == "__main__":
    main()
