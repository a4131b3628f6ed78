"""A Colab rehearsal: what a user gets from `pip install nae-nbdev`, running each experiment notebook on its own.

The wheel is built from a copy of the source tree and installed, *without* the `dev` extra, into a fresh
virtualenv that sees the system's torch (`--system-site-packages`, as Colab brings its own torch) but gets
fastcore 2.x, as a Colab user does (the dev pins hold fastcore < 2). Each experiment notebook is then copied
alone into an empty folder, with no repository around it, and run top to bottom by `nbclient` in a kernel of
that virtualenv with `NAE_SCALE=smoke`. MNIST (and FashionMNIST and Omniglot) come from `NAE_DATA` when it is
set, else from the local mirror of `mirror.py`, downloaded once through torchvision into a data folder.

Every notebook must finish without an error and draw its figures and tables; the wall time of each is
printed (the target is under 3 minutes on 2 CPU cores) and written to `ci_out/colab_rehearsal.json`.
"""
import json, os, shutil, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
# notebook -> (figures, Markdown tables) it must draw at smoke scale with MNIST present (at least)
NOTEBOOKS = {'50_gauss8': (4, 3), '51_mnist_holdout': (3, 4), '52_mnist_ood': (2, 1), '53_gpu_presets': (1, 2),
             '54_mnist_sampling': (3, 0), '55_detector_study': (2, 3), '56_detector_bench': (1, 2), '60_demo': (1, 1)}
TIMES = {}

RUNNER = '''
import json, sys, time, nbformat
from nbclient import NotebookClient
src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
t0 = time.time()
err = None
try: NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': str(__import__('pathlib').Path(src).parent)}}).execute()
except Exception as e: err = f"{type(e).__name__}: {str(e)[-3000:]}"
nbformat.write(nb, dst)
print(json.dumps(dict(seconds=time.time() - t0, error=err)))
'''

def _run(*args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, args))} failed (rc={r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout

@pytest.fixture(scope='module')
def colab(tmp_path_factory):
    "A virtualenv with the wheel (no dev extra) and fastcore 2, and a data folder: (python, data folder, work folder)."
    d = tmp_path_factory.mktemp('colab')
    src = d/'src'   # build from a copy, so the build leaves nothing in the working tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', 'nbs', 'ci_out', 'runs', '_docs', '_proc', 'build', 'dist',
                                                             '*.egg-info', '__pycache__', '.venv', 'venv'))
    _run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', d/'wheel', src)
    whl = next((d/'wheel').glob('nae_nbdev-*.whl'))
    _run(sys.executable, '-m', 'venv', '--system-site-packages', d/'venv')
    py = d/'venv'/'bin'/'python'
    pip = [py, '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    _run(*pip, 'fastcore>=2', 'nbclient', 'nbformat', 'ipykernel', timeout=900)   # from PyPI, as on Colab
    _run(*pip, '--no-deps', '--ignore-installed', whl, timeout=300)               # the wheel itself; its runtime deps come from the system
    info = json.loads(_run(py, '-c', 'import json, fastcore, nae_nbdev, torch; print(json.dumps(dict(fc=fastcore.__version__, '
                                     'file=nae_nbdev.__file__, version=nae_nbdev.__version__)))', cwd=d))
    assert int(info['fc'].split('.')[0]) >= 2, info                                       # fastcore 2.x, as a user gets
    assert Path(info['file']).resolve().is_relative_to((d/'venv').resolve()), info      # the wheel, not the source tree
    assert (Path(info['file']).parent/'records'/'mnist_nae_h9'/'model.pt').exists()    # the published records ship as package data
    data = os.environ.get('NAE_DATA')
    if not data:   # the local mirror, downloaded once through torchvision's own download code
        sys.path.insert(0, str(ROOT/'tests'))
        from mirror import serve_mirror
        from nae_nbdev.data import load_dataset
        data = d/'data'
        with pytest.MonkeyPatch.context() as mp:
            m = serve_mirror(d/'mirror', mp).patch()
            try:
                for name in ('mnist', 'fashion_mnist', 'omniglot'): load_dataset(name, 'test', root=data, download=True)
            finally: m.close()
    return py, Path(data), d

def _outputs(nb):
    for c in nb['cells']:
        if c['cell_type'] == 'code': yield from c.get('outputs', [])

@pytest.mark.parametrize('name', list(NOTEBOOKS))
def test_notebook_runs_alone(colab, name):
    py, data, d = colab
    work = d/f'run_{name}'; work.mkdir()
    shutil.copy(ROOT/'nbs'/f'{name}.ipynb', work)          # alone: no repository, no other notebook, no records folder
    (d/'runner.py').write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'MPLBACKEND', 'NAE_OUT', 'PYTHONPATH')}
    env.update(NAE_SCALE='smoke', NAE_DATA=str(data), NAE_DOWNLOAD='0', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    out = json.loads(_run(py, d/'runner.py', work/f'{name}.ipynb', work/'executed.ipynb', cwd=work, env=env, timeout=1200).splitlines()[-1])
    TIMES[name] = round(out['seconds'], 1)
    _report()
    nb = json.loads((work/'executed.ipynb').read_text())
    errors = [o for o in _outputs(nb) if o['output_type'] == 'error']
    assert out['error'] is None and not errors, f"{name}: {out['error']}\n{errors[:1]}"
    figs = sum('image/png' in o.get('data', {}) for o in _outputs(nb))
    tables = sum('|---' in ''.join(o.get('data', {}).get('text/markdown', '')) for o in _outputs(nb))
    want_figs, want_tables = NOTEBOOKS[name]
    assert figs >= want_figs and tables >= want_tables, f"{name}: {figs} figures, {tables} Markdown tables drawn"
    text = ''.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) for o in _outputs(nb))
    assert str(d) not in text and str(ROOT) not in text, f"{name}: a machine path in the outputs"
    assert 'skipped: no MNIST' not in text, f"{name}: MNIST was not found"
    print(f"{name}: {out['seconds']:.0f}s at NAE_SCALE=smoke, {figs} figures, {tables} tables")

def _report():
    "Write the timings so far (CI keeps ci_out/ as an artefact)."
    if (ROOT/'ci_out').is_dir():
        (ROOT/'ci_out'/'colab_rehearsal.json').write_text(json.dumps(dict(scale='smoke', seconds=TIMES, target_s=180), indent=1))
