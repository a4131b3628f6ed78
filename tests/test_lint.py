"The lint of scripts/lint_nbs.py that keeps hand-typed results out of the prose of the experiment notebooks."
import importlib.util, json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT/'scripts'/'lint_nbs.py'
_spec = importlib.util.spec_from_file_location('lint_nbs', LINT)
lint = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(lint)

def notebook(*cells):
    "A minimal notebook: each cell is ('markdown', text) or ('code', text, output text)."
    cs = []
    for c in cells:
        if c[0] == 'markdown': cs.append(dict(cell_type='markdown', id=f'c{len(cs)}', metadata={}, source=c[1].splitlines(True)))
        else: cs.append(dict(cell_type='code', id=f'c{len(cs)}', metadata={}, execution_count=None, source=c[1].splitlines(True),
                             outputs=[dict(output_type='display_data', metadata={}, data={'text/markdown': [c[2]], 'text/plain': ['<Markdown>']})]))
    return dict(cells=cs, metadata={}, nbformat=4, nbformat_minor=5)

def run_lint(folder):
    return subprocess.run([sys.executable, str(LINT), '--nbs', str(folder)], capture_output=True, text=True)

ALLOWED_PROSE = ("# A fake experiment\n\n> One line.\n\nAs in the paper's Table 4 (§6.1, App. B.2, Tables 6–8), the images are 28×28 "
                 "and 3×32×32; we pass `mult=0.25 --ae_iters 1000`; see [the run](46_run.ipynb) and Grathwohl et al. (2018); "
                 "$\\lambda=10^{-4}$, $D_z=32$; digit 9, seed 0, two 2-D runs.\n\n| | ConstantGray |\n|---|---|\n| NAE (paper) | .989 |\n")

def test_planted_result_is_flagged(tmp_path):
    (tmp_path/'59_fake.ipynb').write_text(json.dumps(notebook(('markdown', ALLOWED_PROSE),
        ('markdown', 'With these settings our NAE reaches .934 on digit 9, within 400 NAE iterations.'))))
    r = run_lint(tmp_path)
    assert r.returncode == 1, r.stdout
    assert "'.934'" in r.stdout and "'400'" in r.stdout and '2 numbers typed in the prose' in r.stdout

def test_allowed_numbers_pass(tmp_path):
    "References, shapes, code, links, citations, integers in maths, small integers and the paper's table rows are not results."
    (tmp_path/'59_fake.ipynb').write_text(json.dumps(notebook(('markdown', ALLOWED_PROSE),
        ('code', 'display(Markdown(f"our NAE reaches {x:.3f}"))', 'our NAE reaches .934'))))   # generated prose: fine
    r = run_lint(tmp_path)
    assert r.returncode == 0, r.stdout
    assert '0 numbers typed in the prose' in r.stdout

def test_per_notebook_list_and_scope():
    "A notebook's ALLOWED list admits its own paper numbers and settings only; notebooks below 50 are not checked."
    nb = notebook(('markdown', "The paper's Table 6: after 10 pre-training epochs the NAE reaches .754. Ours reaches .934."))
    assert [t for _, t, _ in lint.typed_numbers(nb, '51_mnist_holdout.ipynb')] == ['.934']
    assert [t for _, t, _ in lint.typed_numbers(nb, '52_mnist_ood.ipynb')] == ['.754', '.934']
    assert lint.typed_numbers(nb, '10_langevin.ipynb') == []
    assert [t for _, t, _ in lint.typed_numbers(notebook(('markdown', 'It took 12 minutes and 1,500 iterations.')), '60_demo.ipynb')] == ['12']

def test_the_repository_passes():
    "The experiment notebooks as committed: no number typed in their prose beyond ALLOWED."
    bad = [(p.name, t) for p in sorted((ROOT/'nbs').glob('*.ipynb')) for _, t, _ in lint.typed_numbers(json.loads(p.read_text()), p.name)]
    assert bad == []
