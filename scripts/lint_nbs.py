#!/usr/bin/env python
"""Check (or fix) a docs-build hazard: `nbdev_proc_nbs` executes EVERY code cell that contains an
import, whatever its flags, to render the docs. A cell that mixes imports with other code then runs
out of order (often without the variables it needs) and breaks the docs build.

python scripts/lint_nbs.py            # list offending cells, exit 1 if any
python scripts/lint_nbs.py --fix [NB ...]  # move top-level imports of offending cells into a cell of their own
"""
import ast, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
_dir = re.compile(r'^\s*#\s*\|\s*(.*)$')
SHOW = ('export', 'exports', 'exporti', 'exec_doc')

def directives(src): return [m.group(1).strip() for l in src.splitlines() if (m := _dir.match(l))]

def offending(cell):
    if cell['cell_type'] != 'code': return False
    src = ''.join(cell['source']); d = directives(src)
    if any(x.split()[0] in SHOW for x in d if x) or any(x.replace(' ', '') == 'eval:false' for x in d): return False
    if 'nbdev_export()' in src: return False
    code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    try: tree = ast.parse(code)
    except SyntaxError: return False
    has_imp = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
    only_imp = all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)
    return has_imp and not only_imp

def fix(nb):
    cells, changed = [], 0
    for c in nb['cells']:
        if not offending(c): cells.append(c); continue
        src = ''.join(c['source']); lines = src.splitlines()
        tree = ast.parse('\n'.join(l if not l.lstrip().startswith(('%', '!')) else '' for l in lines))
        imp = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if not imp: cells.append(c); continue  # only nested imports: fix by hand
        drop = set()
        for n in imp: drop |= set(range(n.lineno - 1, n.end_lineno))
        dirs = [l for l in lines if _dir.match(l)]
        imp_src = '\n'.join(['#| hide'] if not any('hide' in l for l in dirs) else [l for l in dirs if 'hide' in l])
        imp_src += '\n' + '\n'.join(lines[i] for i in sorted(drop))
        rest = '\n'.join(l for i, l in enumerate(lines) if i not in drop)
        cells.append(dict(cell_type='code', execution_count=None, metadata={}, outputs=[], source=imp_src.splitlines(True)))
        c['source'] = rest.splitlines(True); cells.append(c); changed += 1
    nb['cells'] = cells
    return changed

if __name__ == '__main__':
    bad = 0
    paths = [Path(a) for a in sys.argv[1:] if a.endswith('.ipynb')] or sorted((root/'nbs').glob('*.ipynb'))
    for p in paths:
        nb = json.loads(p.read_text())
        if '--fix' in sys.argv:
            n = fix(nb)
            if n: p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); print(f"{p.name}: split {n} cells")
        for i, c in enumerate(nb['cells']):
            if offending(c):
                bad += 1; first = ''.join(c['source']).strip().splitlines()[:2]
                print(f"{p.name} cell {i}: imports mixed with other code: {' | '.join(first)}")
    print(f"{bad} cells mix imports with other code" + (" (nbdev_proc_nbs would run them out of order)" if bad else ""))
    sys.exit(1 if bad else 0)
