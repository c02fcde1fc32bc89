"""The training loop: data -> model -> loss -> backward -> optimizer -> checkpoints and metrics.

A run lives in one folder (``--out``): ``last.npz`` (saved atomically after every epoch
and on Ctrl-C, enough to resume exactly), ``best.npz`` (the best test accuracy so far; the best
mean IoU for segmentation),
``history.csv`` / ``history.json`` and ``curve.png``.

Exact resume: the data order of epoch e is a function of (seed, e), augmentation of
(seed, e, batch), and dropout draws from convscope's global generator whose state is
saved in the checkpoint, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import random as cs_random
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn import functional as F
from .config import TrainConfig, resolved
from .interrupts import deferred_interrupt
from .optim_factory import make_optimizer, make_scheduler
from .pretrained import freeze, gaussian_init, init_from_weights
from .resume import plan_resume, restore
from .run_files import plot_run_history, run_result, save_run, write_history
from .tasks import make_task

if TYPE_CHECKING:
    from ..nn import Module


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN/inf; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the state was saved and the run can be resumed."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def _file_normalizer(model, channels: int):
    """The preprocessing an imported ONNX model was trained with (from its metadata): identity
    when the graph normalises itself, None when the file does not say (then it is fitted)."""
    from ..data import Normalizer

    pre = model.preprocessing()
    if pre.get("normalization_in_graph"):
        return Normalizer([0.0] * channels, [1.0] * channels)
    if "mean" in pre and "std" in pre:
        return Normalizer(pre["mean"], pre["std"])
    return None


def default_out_dir(config: TrainConfig) -> str:
    data = config.data.split(":")[0]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    model = os.path.splitext(os.path.basename(config.model))[0]  # a registry name or an .onnx file
    base = os.path.join("runs", f"{model}-{data}-{stamp}")
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


class Trainer:
    """Train a registered model on a data set spec.

    Args:
        config (TrainConfig): the run's settings.
        progress (bool, default True): show a tqdm bar per epoch (on stderr).
        log (callable, default print to stderr): receives one-line status messages.
        distributed (convscope.distributed.DistributedRun, optional): train data-parallel over
            MPI; only rank 0 writes files, prints and shows progress.

    Example:
        >>> result = Trainer(TrainConfig(data='digits', model='simple', epochs=3)).fit()
        >>> result['test_accuracy']
    """

    state: dict[str, Any]  # epoch, batch, best_accuracy, seconds, running, rng (JSON-able)
    history: list[dict[str, Any]]  # one row per finished epoch
    frozen_bn: list[Module]  # batch norms kept in eval mode (--freeze)

    def __init__(self, config: TrainConfig, progress: bool = True, log=None, distributed=None):
        self.config = config.validate()
        self.dist = distributed
        self.is_writer = distributed is None or distributed.is_writer
        self.progress = progress and self.is_writer
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if not self.is_writer:
            self.log = lambda msg: None

    # ------------------------------------------------------------------ setup
    def _setup(self, resume: bool):
        from .. import models
        from ..data import DataLoader, Normalizer, absolute_spec, few_images_warning, load_dataset
        from ..models.loading import create_model, is_onnx_path

        cfg = self.config
        self.out = cfg.out or default_out_dir(cfg)
        dist = self.dist
        if dist is not None:  # rank 0's folder and view of it
            self.log(dist.describe())
            dist.check_settings(cfg.to_dict())
            self.out = dist.shared(self.out)
        last = os.path.join(self.out, "last.npz")
        last_exists = os.path.exists(last) if dist is None else dist.shared(os.path.exists(last))
        ckpt, planned, epochs = None, cfg.epochs, self._extend_to
        data_spec = cfg.data
        if resume:
            ckpt, planned, data_spec = plan_resume(self, last, last_exists, epochs)
            cfg = self.config
        elif last_exists:
            raise ValueError(
                f"{self.out} already holds a run (last.npz); pass --resume to continue it "
                f"or choose another --out"
            )
        cs_random.manual_seed(cfg.seed)

        def load():
            return load_dataset(
                data_spec,
                test_split=cfg.test_split,
                seed=cfg.seed,
                image_size=cfg.image_size,
                mode=cfg.mode,
                ignore_index=cfg.ignore_index,
            )

        self.splits = load() if dist is None else dist.collective("loading the data", load)
        self.data_spec_absolute = absolute_spec(data_spec)
        if self.splits.note:
            self.log(self.splits.note)
        self.task = make_task(cfg.task, self.splits, cfg.ignore_index)
        if few_images_warning(self.splits):
            self.log(few_images_warning(self.splits))
        train, test = self.splits.train, self.splits.test
        self.defaults_applied = cfg.apply_model_defaults(train.input_shape)
        if self.defaults_applied:
            shape = "x".join(map(str, train.input_shape))
            chosen = ", ".join(f"{k}={v}" for k, v in self.defaults_applied.items())
            self.log(
                f"defaults for {cfg.model} on {shape} inputs (model zoo): {chosen}; a flag overrides each"
            )
        if ckpt is not None:
            self.model = ckpt.build_model()
            saved_norm = ckpt.preprocessing.get("normalizer")
            self.normalizer = Normalizer.from_dict(saved_norm) if saved_norm else None
        else:
            from .compat import check_model_fits

            c, *size = train.input_shape
            # models whose classifier is sized from the input (simple, tinyvgg) get its size
            onnx_file = is_onnx_path(cfg.model)
            kwargs: dict[str, Any] = (
                {"input_size": list(size)} if onnx_file or models.accepts(cfg.model, "input_size") else {}
            )
            if cfg.upsample is not None:
                if not models.accepts(cfg.model, "upsample"):
                    raise ValueError(
                        f"--upsample applies to models with an upsampling path (unet), not {cfg.model}"
                    )
                kwargs["upsample"] = cfg.upsample
            self.model = create_model(cfg.model, num_classes=train.num_classes, in_channels=c, **kwargs)
            if not onnx_file:
                check_model_fits(
                    self.model,
                    cfg.model,
                    train.input_shape,
                    train.num_classes,
                    self.task.name,
                )
            stored = _file_normalizer(self.model, c) if onnx_file else None
            # series come z-normalised per series; images get the training split's channel statistics
            fitted = Normalizer.fit(train.x) if self.splits.normalize else None
            self.normalizer = stored if stored is not None else fitted
        self.init_record = ckpt.meta.get("init") if ckpt is not None else self._initialise()
        self.frozen_bn = []
        if cfg.freeze:
            names, self.frozen_bn = freeze(self.model, cfg.freeze)
            self.init_record = dict(self.init_record or {}, frozen=len(names), freeze=cfg.freeze)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(cfg, params)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        samplers = (None, None)
        if dist is not None:  # rank 0's weights (and, on resume, the checkpoint's) everywhere
            self.model, *samplers = dist.prepare(
                self.model, self.optimizer, train, test, cfg.seed, frozen_bn=self.frozen_bn
            )
        self.train_loader = DataLoader(
            train,
            resolved(cfg.batch_size, "batch_size"),
            shuffle=True,
            seed=cfg.seed,
            transform=self._augmentation(train.input_shape),
            normalizer=self.normalizer,
            sampler=samplers[0],
        )
        self.test_loader = DataLoader(
            test, 256, shuffle=False, seed=cfg.seed, normalizer=self.normalizer, sampler=samplers[1]
        )
        self.history: list[dict] = []
        self.state: dict[str, Any]
        self.history, self.state = (
            [],
            {"epoch": 0, "batch": 0, "best_accuracy": -1.0, "seconds": 0.0, "running": [0.0, 0, 0]},
        )
        if ckpt is not None:
            restore(self, ckpt, resolved(planned, "epochs"))

    def _initialise(self) -> dict:
        """Apply --weights or --init to the new model; the record of where its weights came from."""
        from ..models import model_info

        cfg = self.config
        if cfg.weights:
            record = init_from_weights(self.model, cfg.weights, model_info(cfg.model).classifier, self.log)
            layers = ", ".join(record["reinitialised"]) or "none"
            self.log(f"initialised from {cfg.weights} (re-initialised layers: {layers})")
            return record
        if cfg.init == "gaussian":
            return gaussian_init(self.model, cfg.init_std, cs_random.default_generator())
        return {"source": "default"}

    def _augmentation(self, shape):
        from ..data import Compose, RandomCrop, RandomHorizontalFlip

        aug = self.config.augment or "none"
        if aug != "none" and (self.task.name == "segment" or len(shape) != 3):
            what = "segmentation (masks would not move with the image)" if len(shape) == 3 else "1-D series"
            raise ValueError(f"--augment {aug} is for image classification; expected none for {what}")
        steps: list[RandomCrop | RandomHorizontalFlip] = []
        if "crop" in aug:
            steps.append(RandomCrop(tuple(shape[1:]), self.config.crop_padding or 0))  # resolved by now
        if "flip" in aug:
            steps.append(RandomHorizontalFlip())
        return Compose(steps) if steps else None

    # -------------------------------------------------------------- the loop
    def fit(self, resume: bool = False, epochs: int | None = None) -> dict:
        """Train for ``config.epochs`` epochs, or continue a saved run with ``resume``.

        Args:
            resume (bool, default False): continue the run in ``config.out`` from its last.npz
                with the run's own saved settings (the config's other fields are not used).
            epochs (int, optional): with ``resume``, extend the plan to this many epochs; the
                learning-rate schedule is recomputed for the new length from the saved state.

        Returns:
            dict: test_accuracy, best_accuracy, checkpoint (best.npz), last, out, epochs,
            seconds, history, status ('completed'), defaults_applied (settings chosen from the
            model zoo's metadata for this data's shape).

        Raises:
            ValueError: a finished run resumed without a longer --epochs, a model that does not
                fit the data, or an --out that already holds a run (without ``resume``).
            TrainingDiverged: NaN/inf loss or weights (last good checkpoint kept).
            TrainingInterrupted: Ctrl-C (state saved in last.npz; resume continues exactly).
        """
        self._extend_to = epochs if resume else None
        self._setup(resume)
        cfg = self.config
        # the folder appears with the first saved file: a run that fails before leaves nothing
        start = time.perf_counter() - self.state["seconds"]
        try:
            while self.state["epoch"] < cfg.epochs:
                try:
                    self._run_epoch(self.state["epoch"], start)
                except KeyboardInterrupt:
                    # state holds the last finished batch: resuming replays exactly from there
                    self.state["seconds"] = time.perf_counter() - start
                    save_run(self, os.path.join(self.out, "last.npz"))  # (rank 0 only)
                    msg = (
                        f"interrupted in epoch {self.state['epoch'] + 1} after batch "
                        f"{self.state['batch']}: saved {os.path.join(self.out, 'last.npz')}; "
                        f"continue with --resume --out {self.out}"
                    )
                    raise TrainingInterrupted(msg, run_result(self, "interrupted", start)) from None
        finally:  # completed, interrupted or diverged: draw the curve of the epochs done
            plot_run_history(self)
        return run_result(self, "completed", start)

    def _run_epoch(self, epoch: int, start: float) -> None:
        cfg = self.config
        train_loss, train_acc = self._train_epoch(epoch, start)
        if self.task.name == "classify":  # distributed-aware; segmentation metrics come from the task
            test_loss, test_acc = self.evaluate_loader(self.test_loader)
            metrics = {"test_loss": test_loss, "test_accuracy": test_acc}
        else:
            metrics = self.task.evaluate(self.model, self.test_loader)
        score = metrics[self.task.primary]
        self._check_weights(epoch)
        with deferred_interrupt():  # schedule step, history, state and files move together
            lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None:
                self.scheduler.step()
            self.history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "train_accuracy": train_acc,
                    **metrics,
                    "lr": lr,
                    "seconds": round(time.perf_counter() - start, 3),
                }
            )
            # best_accuracy holds the task's primary score (test accuracy, or mean IoU)
            improved = score > self.state["best_accuracy"]
            self.state.update(
                epoch=epoch + 1,
                batch=0,
                running=[0.0, 0, 0],
                seconds=time.perf_counter() - start,
                best_accuracy=max(score, self.state["best_accuracy"]),
            )
            if improved:  # before last.npz: a resumed run no longer sees this epoch as new best
                save_run(self, os.path.join(self.out, "best.npz"))
            save_run(self, os.path.join(self.out, "last.npz"))
            write_history(self)
        self.log(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} acc {100 * train_acc:.2f}% | "
            f"{self.task.describe(metrics)}" + (" (best)" if improved else "")
        )

    def _train_epoch(self, epoch: int, start: float):
        cfg = self.config
        self.model.train()
        for bn in self.frozen_bn:  # frozen batch norm keeps its running statistics
            bn.eval()
        first = self.state["batch"] if self.state["epoch"] == epoch else 0
        loss_sum, correct, seen = self.state["running"] if first else (0.0, 0, 0)
        bar = self._bar(epoch, first)
        t0, images = time.perf_counter(), 0
        if self.dist is not None:
            self.dist.start_epoch()
        for b, (x, y) in enumerate(self.train_loader.iter_epoch(epoch, first), start=first):
            step = self._distributed_step(b, x, y) if self.dist is not None else None
            if step is not None:
                x, y, weight, context = step
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                logits = self.model(Tensor._wrap(x, False)) if step is None else self._forward(x, context)
            if not np.isfinite(logits.data).all():
                self._diverged(epoch, b, "the model's outputs contain NaN/inf")
            loss = self.task.loss(logits, y, cfg.label_smoothing or 0.0)
            value = loss.item()
            if not np.isfinite(value):
                self._diverged(epoch, b, f"the loss is {value}")
            self.optimizer.zero_grad()
            if step is None:
                loss.backward()
            else:  # this rank's share of the global batch's mean loss; gradients summed over ranks
                with context:
                    (loss * np.float32(weight)).backward()
                self.dist.after_backward()
            with deferred_interrupt():  # the update and its record: both or neither
                self.optimizer.step()
                n = len(y) if step is None or weight else 0  # a stand-in batch counts nothing
                # images (classify) or labelled pixels (segment) counted, and how many were right
                batch_correct, counted = self.task.count_correct(logits.data, y) if n else (0, 0)
                n = counted
                batch_loss = value * n
                stop = False
                if step is not None:  # the global batch's numbers, and whether any rank got Ctrl-C
                    batch_loss, batch_correct, n, stop = self.dist.reduce_step(batch_loss, batch_correct, n)
                loss_sum += batch_loss
                correct += batch_correct
                seen += n
                images += n
                self.state.update(
                    epoch=epoch, batch=b + 1, running=[loss_sum, correct, seen], rng=cs_random.get_rng_state()
                )
            if stop:  # some rank got Ctrl-C: every rank stops after this same batch
                raise KeyboardInterrupt
            if bar is not None:
                rate = images / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(
                    loss=f"{loss_sum / seen:.4f}",
                    acc=f"{100 * correct / seen:.2f}%",
                    img_s=f"{rate:.0f}",
                    refresh=False,
                )
                bar.update(1)
        if bar is not None:
            bar.close()
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    def _distributed_step(self, b, x, y):
        """(x, y, loss weight, context) of this rank's shard of global batch b; an empty shard runs
        a stand-in batch weighted by zero, so the rank still joins every collective."""
        from contextlib import nullcontext

        if len(y):
            return x, y, self.dist.loss_weight(b, self.config.batch_size, len(y)), nullcontext()
        x, y, context = self.dist.phantom(self.train_loader)
        return x, y, 0.0, context

    def _forward(self, x, context):
        with context:
            return self.model(Tensor._wrap(x, False))

    def _bar(self, epoch, first):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(
            total=len(self.train_loader),
            initial=first,
            file=sys.stderr,
            leave=True,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="batch",
            dynamic_ncols=True,
        )

    def evaluate_loader(self, loader):
        """Mean cross-entropy and accuracy of the model over a loader (eval mode, no tape).

        Distributed: each rank evaluates its shard with rank 0's BatchNorm statistics and the
        counts are summed (a Ctrl-C seen by any rank stops all of them here)."""
        self.model.eval()
        if self.dist is not None:
            self.dist.before_evaluation(self.model)
        loss_sum, correct, seen = 0.0, 0, 0
        with no_grad():
            for x, y in loader:
                if not len(y):
                    continue
                logits = self.model(Tensor._wrap(x, False))
                if not np.isfinite(logits.data).all():
                    loss_sum = float("nan")
                    break
                loss_sum += F.cross_entropy(logits, Tensor._wrap(y, False), reduction="sum").item()
                correct += int((logits.data.argmax(axis=1) == y).sum())
                seen += len(y)
        if self.dist is not None:
            loss_sum, correct, seen, stop = self.dist.reduce_evaluation(loss_sum, correct, seen)
            if stop:
                raise KeyboardInterrupt
        if not np.isfinite(loss_sum):
            return float("nan"), 0.0
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    # ------------------------------------------------------------ bookkeeping
    def _diverged(self, epoch, batch, what):
        last = os.path.join(self.out, "last.npz")
        kept = (
            f"kept the last good checkpoint {last} (epoch {self.state['epoch']})"
            if os.path.exists(last)
            else "no checkpoint had been saved yet"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}, batch {batch + 1}: {what}; "
            f"{kept}; try a lower --lr (now {self.config.lr})"
        )

    def _check_weights(self, epoch):
        for name, p in self.model.named_parameters():
            if not np.isfinite(p.data).all():
                self._diverged(epoch, len(self.train_loader) - 1, f"parameter {name} became NaN/inf")
