#!/usr/bin/env python
"""Execute notebooks in place so that their committed outputs come from a real run.

Usage: python scripts/run_nb.py nbs/10_langevin.ipynb [more.ipynb ...] [--skip slow,cuda] [--timings cells.json]

Cells marked `#| eval: false` never run. By default `slow` cells DO run (that is how the
committed figures of long experiments are produced); pass `--skip slow` to leave them
with their previous outputs. Each run prints its wall time; `--timings F` also writes the seconds of every
executed cell (with its first line) to the JSON file F, also when a cell fails. Run `nbdev_clean` afterwards.
Progress bars are turned off (`TQDM_DISABLE=1`): committed outputs hold results, not bars.
"""
import os, sys, time, argparse, json
os.environ.setdefault('TQDM_DISABLE', '1')   # before anything imports tqdm
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc

def run_nb(fn, skip=(), timings=None):
    fn = Path(fn).resolve()
    raw = read_nb(fn)
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb  # parses directives
    skip = set(skip)
    def _skip(cell):
        if cell.cell_type != 'code': return True
        d = getattr(cell, 'directives_', {}) or {}
        if d.get('eval:', [''])[0].lower() == 'false': return True
        return bool(skip & d.keys())
    for c in nb.cells:  # a cell that prints nothing now must not keep its old output
        if not _skip(c): c['outputs'] = []
    sh = CaptureShell(fn)
    t0 = time.time()
    cells, last = [], [time.time()]
    def _pre(cell):
        s = _skip(cell); last[0] = time.time(); return s
    def _post(cell):
        src = ''.join(cell.source) if isinstance(cell.source, list) else cell.source
        cells.append(dict(idx=cell.idx_, seconds=round(time.time() - last[0], 2), first_line=src.strip().splitlines()[0][:80] if src.strip() else ''))
    def _save():
        if timings: Path(timings).write_text(json.dumps(dict(notebook=fn.name, total_s=round(time.time() - t0, 1), cells=cells), indent=1))
    try:
        with working_directory(fn.parent):
            sh.run_all(nb, exc_stop=True, preproc=_pre, postproc=_post)
    finally: _save()
    # copy outputs back onto the raw cells (NBProcessor may have rewritten sources)
    for rc, pc in zip(raw.cells, nb.cells):
        if rc.cell_type == 'code' and not _skip(pc):
            rc['outputs'] = pc.get('outputs', [])
            rc['execution_count'] = pc.get('execution_count')
    write_nb(raw, fn)
    print(f'{fn.name}: ran in {time.time()-t0:.1f}s')

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('nbs', nargs='+')
    p.add_argument('--skip', default='', help='comma-separated flags to skip, e.g. slow,cuda')
    p.add_argument('--timings', default=None, help='write the seconds of each cell to this JSON file (one notebook only)')
    a = p.parse_args()
    for f in a.nbs: run_nb(f, [s for s in a.skip.split(',') if s], a.timings)
