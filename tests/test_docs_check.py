"""The docs check must fail on what a reader would notice: each problem is planted in a tiny notebook, the
notebooks are rendered with smalldocs as the real site is, and `scripts/check_docs.py` must name the problem
on that page and find nothing on a clean page. The static checks (long streams, machine paths, subtitles) always
run; the browser checks (KaTeX, widths, fixed-width tables, shrunk figures) need chromium and a local KaTeX
(`apt-get install chromium libjs-katex`) and are skipped, with the reason, where those are missing.
About 30 s with the browser (two pages a second in headless chromium)."""
import base64, importlib.util, io, json, subprocess, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('check_docs', ROOT/'scripts'/'check_docs.py')
cd = importlib.util.module_from_spec(spec); spec.loader.exec_module(cd)

FILLER = ("This page exists to test the documentation check. It has enough ordinary words that the check "
          "does not call it empty, and it says nothing else of interest to a reader of the library at all. ") * 2

def md(s): return {"cell_type": "markdown", "metadata": {}, "source": s}
def code(src, text=None, png=None, name='stdout'):
    outs = []
    if text is not None: outs.append({"output_type": "stream", "name": name, "text": text})
    if png is not None: outs.append({"output_type": "display_data", "metadata": {},
                                     "data": {"image/png": png, "text/plain": "<Figure>"}})
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": outs, "source": src}

def page(title, *cells, sub='A page of the test site.'):
    return {"cells": [md(f"# {title}\n\n> {sub}"), md(FILLER), *cells],
            "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": 5}

def png_b64(width_in, dpi=100):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(width_in, 1.5), dpi=dpi); ax.plot([0, 1], [0, 1]); ax.set_title('a title')
    b = io.BytesIO(); fig.savefig(b, format='png', dpi=dpi); plt.close(fig)
    return base64.b64encode(b.getvalue()).decode()

aligned = '\n'.join(f"{'row ' + str(i):<20}" + ''.join(f"{0.5 + i / 100:>14.3f}" for _ in range(10)) for i in range(3))
PAGES = {  # page name -> (notebook, a phrase the check must report on it; None: a clean page)
    'clean': (page('Clean', md("Inline $E(x) = \\lVert x \\rVert^2$ and display\n\n$$p(x) = \\frac{e^{-E(x)/T}}{\\Omega}$$\n\n"
                               "| a | b |\n|---|---|\n| 1 | 2 |"),
                   code("print('ok')", "a short output\nof two lines\n"), code("fig", png=png_b64(6)),
                   code("link = '[the page](clean.ipynb)'")), None),
    'katex_error': (page('KaTeX error', md("An undefined macro: $\\notamacro{x}$.")), 'KaTeX error'),
    'raw_math': (page('Raw maths', md("Spaces inside the dollars keep this from being maths: $ x + y $.")), 'raw maths'),
    'wide_table': (page('Wide table', md("| name | value |\n|---|---|\n| " + 'x' * 220 + " | 1 |")), 'too wide'),
    'wide_math': (page('Wide maths', md("$$" + ' + '.join(f"a_{{{i}}} b_{{{i}}}" for i in range(60)) + "$$")), 'too wide'),
    'wide_output': (page('Wide output', code("print(table)", aligned + '\n')), 'fixed-width table'),
    'shrunk_figure': (page('Shrunk figure', code("fig", png=png_b64(30))), 'figure shrunk'),
    'long_stream': (page('Long stream', code("for i in range(40): print(i)", ''.join(f"{i}\n" for i in range(40)))), 'stdout output of 40 lines'),
    'progress_dump': (page('Progress dump', code("fit()", ''.join(f"ae: {i}%|#  | {i}/100\n" for i in range(0, 100, 2)), name='stderr')), 'stderr output of 50 lines'),
    'tmp_path': (page('Temporary path', code("print(p)", "saved to /tmp/tmpab12cd/rows.png\n")), 'path of the machine'),
    'data_path': (page('Data path', code("print(root)", "reading MNIST from /home/someone/data/mnist\n")), 'path of the machine'),
    'nonetype': (page('NoneType', md("```python\nload(path:str, device:NoneType=None)\n```")), 'NoneType for device'),
    'unlinked': (page('Unlinked', md("Scores come from `metrics.ood_report`.")), 'do not link'),
    'subtitle': (page('Two-line subtitle', sub='A subtitle that goes on\n> onto a second line.'), 'subtitle has 2 lines'),
    'nested_link': (page('Nested link', md("What nbdev makes of a backticked API name inside a link: [[`ood_report`](clean.html)](clean.ipynb).\n\n"
                                           "A link in code is not one: `see [the page](clean.ipynb)`.")), 'shown as text'),
}
BROWSER = {'KaTeX error', 'raw maths', 'too wide', 'fixed-width table', 'figure shrunk'}

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp('docs')
    (d/'_quarto.yml').write_text("project:\n  type: website\n  output-dir: _site\nwebsite:\n  title: test\n")
    for name, (nb, _) in PAGES.items(): (d/f'{name}.ipynb').write_text(json.dumps(nb))
    r = subprocess.run(['smalldocs', 'render', str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d

def run_check(site, browser):
    nbs = sorted(site.glob('*.ipynb'))
    probs, pages, *_ = cd.check_site(site/'_site', site, nbs, site, browser=browser, dest=site/'_check', screens=False,
                                     public={'metrics': {'ood_report'}})
    assert len(pages) == len(PAGES), probs
    return probs

def test_static_checks_fail_on_planted_problems(site):
    probs = run_check(site, browser=False)
    assert probs['clean.ipynb'] == [], probs['clean.ipynb']
    for name, (_, want) in PAGES.items():
        if want is None or want in BROWSER: continue
        assert any(want in e for e in probs[f'{name}.ipynb']), (name, want, probs[f'{name}.ipynb'])

def test_browser_checks_fail_on_planted_problems(site):
    if not cd.find_chromium(): pytest.skip("no chromium: apt-get install chromium")
    if not cd.find_katex(): pytest.skip("no local KaTeX: apt-get install libjs-katex (or npm install katex)")
    probs = run_check(site, browser=True)
    assert probs['clean.ipynb'] == [], probs['clean.ipynb']                  # maths rendered, nothing too wide
    for name, (_, want) in PAGES.items():
        if want is None: continue
        assert any(want in e for e in probs[f'{name}.ipynb']), (name, want, probs[f'{name}.ipynb'])
    assert not any('figure' in e for e in probs['wide_output.ipynb'] + probs['clean.ipynb'])

def test_missing_katex_is_a_failure():
    "Offline, KaTeX from a CDN never loads: the page shows raw TeX, and the check must say so."
    R = dict(katex_loaded=False, math=3, unrendered=['x'] * 3, katex_errors=[], raw_math=[], wide=[], long_lines=[], shrunk=[])
    assert any('KaTeX did not load' in e for e in cd.browser_problems(R))
