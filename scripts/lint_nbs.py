#!/usr/bin/env python
"""Check (or fix) a docs-build hazard: `nbdev_proc_nbs` executes EVERY code cell that contains an
import, whatever its flags, to render the docs. A cell that mixes imports with other code then runs
out of order (often without the variables it needs) and breaks the docs build.

Also checks the words a reader meets (cells and outputs): no words from the workshop that made the
library ("the issue", "this session", "lead engineer", REFERENCE.md, paths into a shared data folder),
no notebook named in backticks where a Markdown link belongs (`[the samplers](10_samplers.ipynb)`),
and a one-line `>` subtitle (nbdev keeps only the first line).

python scripts/lint_nbs.py            # list offending cells, exit 1 if any
python scripts/lint_nbs.py --fix [NB ...]  # move top-level imports of offending cells into a cell of their own
"""
import ast, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
_dir = re.compile(r'^\s*#\s*\|\s*(.*)$')
SHOW = ('export', 'exports', 'exporti', 'exec_doc')

def directives(src): return [m.group(1).strip() for l in src.splitlines() if (m := _dir.match(l))]

def guarded_import(n):
    "`try: import x` / `except ImportError: <install it>`: safe to run out of order (a Colab set-up cell)."
    return (isinstance(n, ast.Try) and all(isinstance(b, (ast.Import, ast.ImportFrom)) for b in n.body)
            and all(isinstance(h.type, ast.Name) and h.type.id in ('ImportError', 'ModuleNotFoundError') for h in n.handlers))

def offending(cell):
    if cell['cell_type'] != 'code': return False
    src = ''.join(cell['source']); d = directives(src)
    if any(x.split()[0] in SHOW for x in d if x) or any(x.replace(' ', '') == 'eval:false' for x in d): return False
    if 'nbdev_export()' in src: return False
    code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    try: tree = ast.parse(code)
    except SyntaxError: return False
    has_imp = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
    only_imp = all(isinstance(n, (ast.Import, ast.ImportFrom)) or guarded_import(n) for n in tree.body)
    return has_imp and not only_imp

WORKSHOP = re.compile(r"the issue|this session|lead engineer|REFERENCE\.md|shared/data|\.\./shared", re.I)
NB_NAME = re.compile(r"`(\d\d_[A-Za-z0-9_]+)(?:\.ipynb)?`")

def words(nb):
    "Problems with the words of a notebook: [(cell index, message)]."
    res = []
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source'])
        outs = ''.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) +
                       ''.join(o.get('data', {}).get('text/markdown', '')) for o in c.get('outputs', []))
        for where, t in (('', src), (' output', outs)):
            for m in WORKSHOP.finditer(t):
                res.append((i, f"workshop words in the{where or ' ' + c['cell_type']}: ...{t[max(0, m.start() - 30):m.end() + 20]!r}..."))
        if c['cell_type'] == 'markdown':
            for m in NB_NAME.finditer(src):
                res.append((i, f"notebook named in backticks: `{m.group(1)}`; link it, e.g. [the text]({m.group(1)}.ipynb)"))
    if nb['cells'] and nb['cells'][0]['cell_type'] == 'markdown':
        quote = [l for l in ''.join(nb['cells'][0]['source']).splitlines() if l.startswith('>')]
        if len(quote) > 1: res.append((0, f"the '>' subtitle has {len(quote)} lines; nbdev keeps only the first"))
    return res

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
    bad = nwords = 0
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
        for i, msg in words(nb):
            nwords += 1; print(f"{p.name} cell {i}: {msg}")
    print(f"{bad} cells mix imports with other code" + (" (nbdev_proc_nbs would run them out of order)" if bad else ""))
    print(f"{nwords} problems with the words a reader meets")
    sys.exit(1 if bad or nwords else 0)
