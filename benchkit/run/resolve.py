"""Resolve a run once: the user's configuration, with the default preset's choices applied once,
checked, and every entry of every list flag parsed and resolved into a :class:`~benchkit.plugin.spec.Spec`.

:func:`resolve` is the first step of ``benchkit run`` and its Python API: every check of the user's
names and options runs here, before anything is loaded; :func:`benchkit.run.plan.plan` then loads
and checks the data and cuts the cells into shards. The result is a frozen :class:`ResolvedRun`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchkit.errors import UserError
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec, unique
from benchkit.run.defaults import DEFAULT_N_IMAGES, DEFAULT_OUT, DEFAULT_PRESET, METRIC_BATCH_SIZE
from benchkit.run.evaluation import HOLE_BINS
from benchkit.run.validation import check_option_names, parse_device


@dataclass
class RunConfig:
    """Settings of ``benchkit run``. ``methods=None`` means every available method; ``datasets``,
    ``masks`` and ``metrics`` left None are the ``default`` preset's.

    ``executor`` names an executor plugin (``inprocess``, ``processes``, ``dask``) and
    ``executor_options`` its options (``workers``, ``scheduler`` ...); ``shard_size`` is the number of
    images per shard (None: the executor's default, a whole cell in-process).
    """

    methods: list[str] | None = None
    datasets: list[str] | None = None
    masks: list[str] | None = None
    metrics: list[str] | None = None
    n_images: int = DEFAULT_N_IMAGES
    seed: int = 0
    batch_size: int | None = None  # images per method call; None: each method's preferred size (auto)
    device: str = "cpu"
    out: Path = Path(DEFAULT_OUT)
    force: bool = False  # redo this run's finished cells (others in the folder are kept)
    replace_folder: bool = False  # delete every cell of --out first (another run's too)
    data_dir: str | None = None
    models_dir: str | None = None
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    command: str = ""
    optional_datasets: bool = False  # skip (with a note) datasets that are not on disk, as presets do
    optional_methods: bool = False  # skip (with a note) methods that cannot run, as when methods is None
    executor: str = "inprocess"
    executor_options: dict = field(default_factory=dict)
    weights_dir: str | None = None  # pretrained weights of metrics (FID's Inception ...); else $BENCHKIT_WEIGHTS
    shard_size: int | None = None
    bins: str | None = None  # set metrics also per hole-area bin: "lama" (10 of 0.1) or "comodgan" (5 of 0.2)
    threads: int | None = None  # torch threads per worker; None: this process's cores divided among the workers


@dataclass(frozen=True)
class ResolvedRun:
    """A run's configuration after :func:`resolve`: defaults applied, every input checked, every
    entry a resolved :class:`Spec` (methods in the order named, each labelled as its rows read)."""

    config: RunConfig
    methods: tuple[Spec, ...]
    masks: tuple[Spec, ...]
    metrics: tuple[Spec, ...]
    datasets: tuple[Spec, ...]
    executor: Spec
    lenient: bool  # methods that cannot run on a dataset are skipped with a note (all methods, presets)
    notes: tuple[str, ...] = field(default=())


def resolve(config: RunConfig, registry: Registry) -> ResolvedRun:
    """Apply the default preset's choices to ``config`` once, check it, and resolve every spec."""
    config = with_defaults(config, registry)
    _check_config(config)
    notes: list[str] = []
    lenient = config.methods is None or config.optional_methods
    assert config.masks is not None and config.metrics is not None and config.datasets is not None  # with_defaults
    methods = _method_specs(config, registry, lenient, notes)
    masks = resolve_specs(config.masks, "mask", "--masks", config, registry, notes)
    metrics = resolve_specs(config.metrics, "metric", "--metrics", config, registry, notes)
    datasets = resolve_specs(config.datasets, "dataset", "--datasets", config, registry, notes)
    executor = _executor_spec(config, registry)
    for kind, spec in [*(("metric", s) for s in metrics), ("executor", executor)]:
        problem = registry.get(kind, spec.name).cls.missing_requirement()
        if problem:
            raise UserError(f"{kind} {problem}")
    in_run = {s.name for s in [*methods, *masks, *metrics, *datasets, executor]}
    check_option_names(config.options, registry, in_run, notes)
    return ResolvedRun(config, tuple(methods), tuple(masks), tuple(metrics), tuple(datasets), executor, lenient,
                       tuple(notes))


def _method_specs(config: RunConfig, registry: Registry, lenient: bool, notes: list[str]) -> list[Spec]:
    """The run's methods: those named, or every available one but the slow (a note names them);
    one whose optional module is missing is an error, or skipped with a note when ``lenient``."""
    every = [n for n in registry.names("method") if registry.get("method", n).cls.in_default_run]
    slow = [n for n in every if registry.get("method", n).cls.slow]
    if config.methods is None and slow:
        notes.append(f"left out as slow: {', '.join(slow)} (name them with --methods to run them)")
        every = [n for n in every if n not in slow]
    specs = resolve_specs(config.methods if config.methods is not None else every, "method", "--methods", config,
                          registry, notes)
    for spec in list(specs):
        problem = registry.get("method", spec.name).cls.missing_requirement()
        if problem and not lenient:
            raise UserError(f"method {problem}")
        if problem:
            notes.append(f"skipped: method {problem}")
            specs.remove(spec)
    labels = [s.label for s in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UserError(f"--methods names two entries '{repeated[0]}': give each a distinct name=")
    return specs


def _executor_spec(config: RunConfig, registry: Registry) -> Spec:
    """The executor with its options: ``-o`` and the general flags (``--workers`` ...) it takes."""
    spec = Spec.parse(config.executor, "executor")
    given = {k: v for k, v in config.executor_options.items() if v is not None}
    for flag in given:
        if not registry.accepts("executor", spec.name, flag):
            raise UserError(f"--{flag} does not apply to --executor {config.executor}: leave it out, or choose an "
                            "executor that takes it (`benchkit info dask`)")
    return spec.resolve(registry, config.options.get(spec.name, {}) | given)


def metric_batch_size(config: RunConfig) -> int:
    """Composites per metric call: ``--batch-size``, or 256 under auto."""
    return config.batch_size or METRIC_BATCH_SIZE


def with_defaults(config: RunConfig, registry: Registry) -> RunConfig:
    """``config`` with the datasets, masks and metrics it leaves None taken from the ``default`` preset."""
    default = registry.create("preset", DEFAULT_PRESET)
    return replace(config, datasets=list(default.datasets) if config.datasets is None else config.datasets,
                   masks=list(default.masks) if config.masks is None else config.masks,
                   metrics=list(default.metrics) if config.metrics is None else config.metrics)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or ``taskset`` limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def worker_threads(threads: int | None, workers: int, notes: list[str]) -> int:
    """torch threads per worker: ``--threads``, or the available cores divided among the workers
    (at least one). A note when the workers' threads together exceed the cores: on a CPU that other
    jobs share, threads that wait for each other slow a run down many times."""
    cores = available_cores()
    chosen = threads or max(1, cores // workers)
    if workers * chosen > cores:
        notes.append(f"{workers} workers x {chosen} threads = {workers * chosen} threads on {cores} cores: they will "
                      "wait for each other; lower --threads (or --workers)")
    return chosen


def _check_config(config: RunConfig) -> None:
    if config.n_images < 0 or (config.batch_size is not None and config.batch_size < 1):
        raise UserError("--n-images must be >= 0 (0 = all) and --batch-size >= 1 (or auto)")
    if config.seed < 0 or config.seed >= 2**63:
        raise UserError(f"--seed {config.seed} is out of range: use a seed from 0 to 2**63 - 1")
    for label, names in (("--datasets", config.datasets), ("--masks", config.masks),
                         ("--metrics", config.metrics)):
        if not names:
            raise UserError(f"{label} is empty: name at least one")
    if config.methods is not None and not config.methods:
        raise UserError("--methods is empty: name at least one, or leave it out for all")
    if config.threads is not None and config.threads < 1:
        raise UserError(f"--threads {config.threads} must be at least 1 (or leave it out for the available cores)")
    if config.shard_size is not None and config.shard_size < 1:
        raise UserError(f"--shard-size {config.shard_size} must be at least 1")
    if config.bins and config.bins not in HOLE_BINS:
        raise UserError(f"--bins {config.bins} is not one of {', '.join(HOLE_BINS)}: choose one, or leave it out")
    parse_device(config.device)


def resolve_specs(texts: list[str], kind: str, flag: str, config: RunConfig, registry: Registry,
                  notes: list[str]) -> list[Spec]:
    """Parse and resolve the entries of one list flag; ``-o NAME.KEY=V`` fills what they leave unset,
    and entries that are the same spec after defaults are kept once (with a note)."""
    specs = [Spec.parse(text, kind) for text in texts]
    return unique([spec.resolve(registry, config.options.get(spec.name)) for spec in specs], flag, notes)


