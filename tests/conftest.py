"Shared helpers for the process-level system tests (CLI, kill/resume, faults, distributed)."
import os, sys, json, subprocess, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def cli_env(**extra):
    "Environment for console-script subprocesses: one thread each (tests run on 2 shared cores), no GPU."
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1', MPLBACKEND='Agg',
               CUDA_VISIBLE_DEVICES='')
    env.update(extra)
    return env

def run_cli(*args, check=True, timeout=600, **kw):
    "Run a console script (e.g. 'nae_train', '--out', d) and return the CompletedProcess (text mode)."
    exe = shutil.which(args[0])
    assert exe, f"console script {args[0]} is not installed (pip install -e .)"
    r = subprocess.run([exe, *map(str, args[1:])], capture_output=True, text=True, timeout=timeout, env=cli_env(), **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed (rc={r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r

def reached(out:Path, phase:str, step:int) -> bool:
    "True once the run's log holds a record of `phase` at `step` or later (or, for step 0, its first checkpoint)."
    if step == 0: return (out/phase/'last.pt').exists()
    try: lines = (out/'log.jsonl').read_text().splitlines()
    except FileNotFoundError: return False
    for l in lines:
        try: r = json.loads(l)
        except ValueError: continue  # a line being written
        if r.get('phase') == phase and r.get('step', 0) >= step: return True
    return False

# A tiny digits run: seconds on one core, but every code path of the real job (both phases,
# validation, checkpoints, evaluation, run directory).
TINY = ['--ae_iters', '40', '--nae_iters', '30', '--x_steps', '5', '--z_steps', '3', '--dz', '8',
        '--batch_size', '32', '--val_every', '10', '--ckpt_every', '5', '--quiet']

@pytest.fixture
def mirror(tmp_path_factory, monkeypatch):
    "Tiny data-set archives in the real formats, served on 127.0.0.1 (see `mirror.py`); call `.patch()` to point torchvision at them."
    from mirror import serve_mirror
    m = serve_mirror(tmp_path_factory.mktemp('mirror'), monkeypatch)
    yield m
    m.close()

def pytest_terminal_summary(terminalreporter):
    "Print the fault suite's count of bad inputs tried (issue 6)."
    try: from test_faults import TRIED
    except Exception: return
    if not TRIED: return
    tr = terminalreporter
    tr.section('fault suite')
    for case, outcome in TRIED: tr.write_line(f"  {case}: {outcome}")
    tr.write_line(f"{len(TRIED)} bad inputs tried; each was refused with a clear error or handled as documented; "
                  "no saved run, checkpoint or data file was lost or changed.")
