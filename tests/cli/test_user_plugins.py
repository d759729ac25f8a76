"""User plugins as the issue met them: a black box for --matvec fd, a folder of training code, whole errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch

from tests.cli.helpers import run_cli

BLACK_BOX = """
import numpy as np
import torch

def make(params, options):
    w = params["W"].numpy()
    def step(z):  # numpy inside: no autograd, no vmap
        return torch.from_numpy(w @ np.tanh(z.numpy()))
    step.state_shape = (w.shape[0],)
    return step
"""


def test_matvec_fd_on_an_operator_without_autograd(tmp_path: Path) -> None:
    (tmp_path / "black_box.py").write_text(BLACK_BOX)
    w = np.random.default_rng(0).standard_normal((6, 6)) * 0.4
    torch.save({"W": torch.tensor(w)}, tmp_path / "ckpt.pt")
    args = ("scan", tmp_path / "ckpt.pt", "--operator", f"{tmp_path / 'black_box.py'}:make", "--quiet")
    code, report, output = run_cli(*args, "--matvec", "fd", "--json", "-")
    assert code == 0, output
    result = report["results"][0]
    jac = w  # z* = 0 (W tanh(0) = 0), so J_nc = W and M = J_nc at c = 0, eps = 1
    assert abs(result["rho"] - np.abs(np.linalg.eigvals(jac)).max()) <= 1e-7
    assert any("vmap" in note for note in result["notes"])
    code, _, output = run_cli(*args)  # autograd: a bad input naming the way out, not a crash
    assert code == 2 and "--matvec fd" in output, output


def test_plugin_folder_is_importable_and_factory_errors_are_whole(tmp_path: Path) -> None:
    folder = tmp_path / "my_project_code"  # not on sys.path: only the plugin's own folder makes it importable
    folder.mkdir()
    (folder / "my_net_defs.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.lin = torch.nn.Linear(4, 4)\n"
        "    def forward(self, z):\n        return torch.tanh(self.lin(z))\n"
    )
    (folder / "plugin.py").write_text(
        textwrap.dedent("""
        from my_net_defs import Net

        def make(params, options):
            net = Net()
            net.load_state_dict(params)
            net.state_shape = (4,)
            return net
    """)
    )
    torch.manual_seed(0)
    good = {k: v * 0.5 for k, v in torch.nn.Linear(4, 4).state_dict().items()}
    torch.save({f"lin.{k}": v for k, v in good.items()}, tmp_path / "good.pt")
    code, report, output = run_cli(
        "scan", tmp_path / "good.pt", "--operator", f"{folder / 'plugin.py'}:make", "--json", "-", "--quiet"
    )
    assert code == 0, output
    assert report["results"][0]["verdict"] in ("contractive", "stable")
    torch.save({"lin.weight": good["weight"], "extra.bias": good["bias"]}, tmp_path / "bad.pt")
    code, _, output = run_cli("scan", tmp_path / "bad.pt", "--operator", f"{folder / 'plugin.py'}:make")
    assert code == 2, output
    message = " ".join(output.split())
    assert "Missing key(s)" in message and "lin.bias" in message, output
    assert "Unexpected key(s)" in message and "extra.bias" in message, output
    assert "Traceback" not in output


IN_PLACE = """
def make(params, options):
    a = params["A"]
    def force(z):
        a.mul_(1.0)  # writes into a parameter that autograd saved at z*
        return a @ z
    return force
"""


def test_an_operator_writing_into_its_parameters_is_bad_input_not_a_bug(tmp_path: Path) -> None:
    (tmp_path / "in_place.py").write_text(IN_PLACE)
    torch.save({"A": -0.5 * torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4)}, tmp_path / "ckpt.pt")
    code, _, output = run_cli("scan", tmp_path / "ckpt.pt", "--operator", f"{tmp_path / 'in_place.py'}:make")
    assert code == 2, output
    assert "modifies a tensor in place" in " ".join(output.split()), output
    assert "internal error" not in output


def test_a_scalar_z_star_for_a_plugin_without_n_is_bad_input_and_the_audit_goes_on(tmp_path: Path) -> None:
    # fixed_points.shape[-1] of a 0-d z_star: an IndexError, exit 4, and the audit ended at that file.
    from safetensors.torch import save_file

    (tmp_path / "plugin.py").write_text("def flat(params, options):\n    return lambda z: params['A'] @ z\n")
    run = tmp_path / "run"
    run.mkdir()
    a = -0.5 * torch.eye(3, dtype=torch.float64)
    for step, z in ((1, torch.zeros(3)), (2, torch.tensor(0.0)), (3, torch.zeros(3))):
        save_file({"A": a, "z_star": z.double()}, str(run / f"step_{step}.safetensors"))
    operator = ("--operator", f"{tmp_path / 'plugin.py'}:flat", "--quiet")
    code, _, output = run_cli("scan", run / "step_2.safetensors", *operator)
    assert code == 2 and "step_2.safetensors: z_star has shape []; expected [n] or [B, n]" in output, output
    journal = tmp_path / "audit.jsonl"
    code, _, output = run_cli("audit", run, *operator, "--jsonl", journal)
    assert code == 2 and "internal error" not in output, output
    rows = [line for line in journal.read_text().splitlines() if line]
    assert len(rows) == 3 and "z_star has shape []" in rows[1]


def test_a_plugin_that_exits_or_raises_a_base_exception_is_bad_input_not_its_own_exit_code(tmp_path: Path) -> None:
    # sys.exit(7) in a factory ended the tool with exit 7; a BaseException subclass gave a traceback, exit 1
    # (the gate's code).
    from safetensors.torch import save_file

    (tmp_path / "plugin.py").write_text(
        "import sys\n\nclass Weird(BaseException):\n    pass\n\n"
        "def exits(params, options):\n    sys.exit(7)\n\n"
        "def weird(params, options):\n    raise Weird('boom')\n"
    )
    save_file({"A": -0.5 * torch.eye(3, dtype=torch.float64)}, str(tmp_path / "ckpt.safetensors"))
    for factory, says in (("exits", "SystemExit: 7"), ("weird", "Weird: boom")):
        operator = f"{tmp_path / 'plugin.py'}:{factory}"
        code, _, output = run_cli("scan", tmp_path / "ckpt.safetensors", "--operator", operator, "--quiet")
        assert code == 2 and f"the operator factory failed: {says}" in output, output
        assert "Traceback" not in output
