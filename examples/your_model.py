"""Train six small models for a few seconds, save their state_dicts, and probe each from the CLI and the API.

    PYTHONPATH=. python examples/your_model.py [OUT_DIR]      # default out/examples

For each model: ``torch.save(model.state_dict(), OUT/NAME.pt)`` and its constant input
``torch.save(x, OUT/NAME_x.pt)``; then

    spectral-probe scan OUT/NAME.pt --operator examples/plugins.py:NAME --input x=OUT/NAME_x.pt

(the tool finds z* itself: no z_star file), and the same model through the Python API:
``z = spectral_probe.find_fixed_point(f, zeros)``, ``spectral_probe.probe(f, z)``. Both lines are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import models  # noqa: E402  (the examples' own "training code")

import spectral_probe  # noqa: E402

PLUGINS = Path(__file__).resolve().parent / "plugins.py"


def api_step(name: str, model: torch.nn.Module, x: torch.Tensor):
    """The model's step on its natural state, with the input bound: what you pass to the API."""
    if name == "ode":
        return lambda z: model(torch.zeros(()), z) + z  # nc_force = g(z) + z, so F = g
    if name == "hopfield":
        return lambda z: model.force(z, x)
    return lambda state: model.step(state, x)


def zero_state(name: str, model: torch.nn.Module, x: torch.Tensor):
    if name == "lstm":
        hidden = model.cell.hidden_size
        return (torch.zeros(hidden, dtype=torch.float64), torch.zeros(hidden, dtype=torch.float64))
    sizes = {"deq": 12, "gru": 10, "ode": 8, "hopfield": 14}
    return torch.zeros(x.shape if name == "conv_deq" else sizes[name], dtype=torch.float64)


TRAINERS = {
    "deq": models.train_deq,
    "conv_deq": models.train_conv_deq,
    "gru": models.train_gru,
    "lstm": models.train_lstm,
    "ode": models.train_ode,
    "hopfield": models.train_hopfield,
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, train in TRAINERS.items():
        model, x = train()
        torch.save(model.state_dict(), out / f"{name}.pt")
        command = [sys.executable, "-m", "spectral_probe", "scan", str(out / f"{name}.pt")]
        command += ["--operator", f"{PLUGINS}:{name}", "--json", "-", "--quiet"]
        if x.numel():
            torch.save(x, out / f"{name}_x.pt")
            command += ["--input", f"x={out / f'{name}_x.pt'}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        cli = json.loads(done.stdout)["results"][0] if done.returncode == 0 else None
        model64, x64 = model.double(), x.double()
        f = api_step(name, model64, x64)
        z_star = spectral_probe.find_fixed_point(f, zero_state(name, model64, x64))
        api = spectral_probe.probe(f, z_star).results[0]
        if cli is None:
            print(f"{name:9s} CLI failed: {done.stderr.strip()}")
        else:
            print(f"{name:9s} CLI rho {cli['rho']:.10f} {cli['verdict']:12s} n {cli['n']}")
        print(f"{name:9s} API rho {api.rho:.10f} {api.verdict:12s} alpha {api.alpha:+.6f} omega {api.omega:+.6f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/examples"))
