"""Read one checkpoint (through :mod:`spectral_probe.checkpoint`) and probe each of its fixed points."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from spectral_probe.batching import torch_quiet
from spectral_probe.checkpoint import (
    checkpoint_settings,
    load_checkpoint,
    load_fixed_point,
    load_inputs,
    prepare_fixed_points,
    to_probe,
)
from spectral_probe.config import DEFAULT_C, DEFAULT_EPS, ProbeOptions
from spectral_probe.errors import InputError, ResourceError
from spectral_probe.fixed_point import find_for_checkpoint
from spectral_probe.memory import check_probe_fits, is_allocation_failure
from spectral_probe.operators import operator_size, resolve_operator
from spectral_probe.probe.fixed_points import probe_fixed_points
from spectral_probe.probe.warm import WarmStart
from spectral_probe.results import FixedPointResult
from spectral_probe.user_model import build_user_force, whole_message
from spectral_probe.validate import shown


@dataclass(frozen=True)
class CheckpointProbe:
    """What probing one checkpoint produced."""

    path: str
    sha256: str
    results: tuple[FixedPointResult, ...]
    warm: WarmStart | None


def probe_checkpoint(
    path: str, options: ProbeOptions, *, warm: WarmStart | None = None, use_warm: bool = True
) -> CheckpointProbe:
    """Read ``path`` and probe each of its fixed points (``[n]`` or ``[B, n]``).

    Sizes are checked before allocation (:func:`spectral_probe.memory.check_probe_fits`); an
    allocation that fails anyway is an :class:`InputError` naming ``path`` (exit 2), not a bug.
    """
    try:
        return _probe_checkpoint(path, options, warm=warm, use_warm=use_warm)
    except InputError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(path, exc.problem) from None  # every problem with this checkpoint names it
    except Exception as exc:
        if _modified_in_place(exc):  # user code: the operator wrote into a tensor autograd had saved
            raise InputError(
                path,
                "the operator modifies a tensor in place (a parameter, a buffer or its input) between calls, "
                f"so its derivative cannot be taken ({_first_line(exc)}); make nc_force out-of-place",
            ) from None
        if not is_allocation_failure(exc):
            raise
        raise ResourceError(path, f"not enough memory to probe it ({_first_line(exc)})") from None


def _modified_in_place(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "modified by an inplace operation" in str(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return shown(lines[0] if lines else type(exc).__name__, 160).strip("'\"")


def _probe_checkpoint(path: str, options: ProbeOptions, *, warm: WarmStart | None, use_warm: bool) -> CheckpointProbe:
    checkpoint = load_checkpoint(path, options.key)
    settings = checkpoint_settings(checkpoint.metadata, path)
    # No z_star anywhere (None): the tool finds it (spectral_probe.fixed_point).
    z_star = load_fixed_point(options.fixed_point) if options.fixed_point is not None else checkpoint.z_star

    from_metadata = options.operator is None
    spec = options.operator if options.operator is not None else settings.get("operator")
    if spec is None:
        raise InputError(path, "names no operator (metadata 'spectral_probe.operator'); pass --operator")
    factory, _ = resolve_operator(spec, from_metadata=from_metadata, path=path)
    c = options.c if options.c is not None else settings.get("c", DEFAULT_C)
    eps = options.eps if options.eps is not None else settings.get("eps", DEFAULT_EPS)
    operator_options = {**settings.get("options", {}), **options.operator_options}

    dtype = getattr(torch, options.dtype)
    device = torch.device(options.device)
    params = to_probe(checkpoint.params, dtype, device)
    inputs = to_probe(load_inputs(options.inputs), dtype, device)
    z_shape = None if z_star is None else tuple(z_star.shape)
    user = build_user_force(
        factory, params, operator_options, inputs, path=path, z_shape=z_shape, dtype=dtype, device=device
    )
    nc_force = user.nc_force
    n = user.layout.n if user.layout is not None else operator_size(nc_force)
    found: tuple[str, ...] = ()
    if z_star is None:
        if n is not None:
            check_probe_fits(nc_force, (1, n), torch.finfo(dtype).bits // 8, options, path)
        fixed_points, found = find_for_checkpoint(nc_force, n, float(c), float(eps), options, path, dtype, device)
    else:
        fixed_points = to_probe(z_star, dtype, device)
        if n is None and fixed_points.ndim:  # a 0-d z_star has no n: prepare_fixed_points refuses it
            n = fixed_points.shape[-1] if fixed_points.ndim <= 2 else fixed_points.numel()
        fixed_points = prepare_fixed_points(fixed_points, n, options.fixed_point or path)
    check_probe_fits(nc_force, fixed_points.shape, fixed_points.element_size(), options, path)
    try:
        with torch.no_grad():
            probe_out = nc_force(fixed_points[0])
    except Exception as exc:  # a user operator that cannot take this z*: a bad input, not a bug
        read_as = ""
        if z_shape is not None and len(z_shape) > 2:  # flattened to one state: the operator names no n
            read_as = f" of shape {list(z_shape)}, read as {list(fixed_points.shape)} ([B, n] expected)"
        raise InputError(path, f"the operator failed on z_star{read_as}: {whole_message(exc)}") from None
    if probe_out.shape != fixed_points[0].shape:
        raise InputError(
            path, f"nc_force maps z_star of shape {tuple(fixed_points[0].shape)} to {tuple(probe_out.shape)}"
        )
    with torch.no_grad(), torch_quiet():  # torch.func ignores no_grad; float() of the numbers would warn
        results, new_warm = probe_fixed_points(
            nc_force,
            fixed_points,
            c=float(c),
            eps=float(eps),
            options=options,
            label=path,
            warm=warm if use_warm else None,
        )
    step = settings.get("step")
    stamped = tuple(_stamp(r, checkpoint.sha256, step, found) for r in results)
    return CheckpointProbe(path=path, sha256=checkpoint.sha256, results=stamped, warm=new_warm)


def _stamp(result: FixedPointResult, sha256: str, step: int | None, notes: tuple[str, ...] = ()) -> FixedPointResult:
    return replace(result, sha256=sha256, step=step, notes=(*notes, *result.notes))
