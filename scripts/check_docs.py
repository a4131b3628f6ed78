#!/usr/bin/env python
"""Offline docs-site check: process the notebooks as `nbdev_proc_nbs` does, render the `_quarto.yml` site
with smalldocs, then check every page as a reader would meet it.

    python scripts/check_docs.py             # build + static checks
    DOCS_BROWSER=1 python scripts/check_docs.py   # also load every page in headless Chromium (local KaTeX)

No side effects beyond `_proc/` (the build and its scratch copy) and `ci_out/docs/` (screenshots, report): it installs
nothing. `nbdev_proc_nbs` itself is not called, because nbdev 2.4.14's `_pre_docs` starts with `_ensure_quarto()`,
which, when no `quarto` is on PATH, runs `install()`: `sudo dpkg -i` of a downloaded Quarto and then
`pip install -e ".[dev]"`. It also rewrites `nbs/nbdev.yml` (`refresh_quarto_yml`). We call the step that
matters, `nbdev.serve.proc_nbs` (run every notebook's processors into `_proc/`), and only compare
`nbs/nbdev.yml` with what nbdev would write. The `_modidx` it would rebuild is `nbdev_export`'s job (CI's sync stage).

Static checks (always):
- a page per notebook, not empty, no raw error, no broken local link;
- doc links (doc_host/doc_baseurl/X.html#name) reach a built page with that anchor (private `_names`: the page);
- source links reach a file and line of the repository; both kinds are counted and printed;
- no signature shows `NoneType` (an unannotated `x=None`); no public API name is written `module.name` in
  backticks, which nbdev does not link (it links the bare `name`);
- a stream output has at most 30 lines; no output shows a path of the machine that ran it (/tmp/, /work/, ...);
- the `>` subtitle is one line (nbdev keeps only the first); every notebook is in nbs/sidebar.yml.
Browser checks (DOCS_BROWSER=1; scripts/docs_probe.js runs in each page of a scratch copy of the site):
- KaTeX, loaded from a local copy (Debian's libjs-katex or npm's katex, never the CDN), renders every formula,
  with no error (no undefined command) and no raw `\\(`, `\\[` or `$...$` left in the text;
- nothing sticks out of the content column and no box scrolls sideways (tables, display maths, outputs);
  code and outputs wrap (styles.css), so a fixed-width table wider than the column is flagged as such;
- no figure is shown at less than 30% of its pixel width (an inline figure wider than about 10 inches);
- a full-page screenshot of every page is kept in ci_out/docs/screens/ (1280 px wide window).
The real deploy stays `nbdev_docs` (Quarto).
"""
import os, re, sys, json, subprocess, shutil, html, configparser
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nbs, proc = root/'nbs', root/'_proc'
site = proc/'_docs'
out_dir = root/'ci_out'/'docs'
_tag = re.compile(r'<[^>]+>')
BAD = ['Traceback (most recent call last)', 'smalldocs error', 'could not render', 'failed to render']
MAX_STREAM_LINES = 30
# a path of the machine that ran the notebook, as it appears in an output
MACHINE_PATH = re.compile(r'(?<![\w.~-])(?:/(?:tmp|work|root|home|Users|mnt|scratch|data|private|var/folders|content)/[^\s\'"<>)]*|[A-Za-z]:\\\\?Users\\)')
KATEX_CDN = re.compile(r'https://cdn\.jsdelivr\.net/npm/katex@[^/"]+/dist')
KATEX_DIRS = ['/usr/share/javascript/katex', '/usr/lib/node_modules/katex/dist', '/usr/local/lib/node_modules/katex/dist',
              str(root/'ci_out'/'npm'/'node_modules'/'katex'/'dist')]

def cfg():
    c = configparser.ConfigParser(); c.read(root/'settings.ini'); return c['DEFAULT']

# ------------------------------------------------------------------ build
def run(cmd, **kw):
    "Run `cmd`; returns (rc, everything it printed)."
    r = subprocess.run(cmd, cwd=kw.pop('cwd', root), capture_output=True, text=True, **kw)
    return r.returncode, (r.stdout + r.stderr).strip()

def show_warnings(label, out):
    "Print a tool's output; a smalldocs warning repeated for many pages is printed once, with the pages' count."
    groups = {}
    for l in out.splitlines():
        if not l.strip() or l.startswith('wrote '): continue
        key = re.sub(r'^(warning: )\S+\.(?:ipynb|qmd|md): ', r'\1<page>: ', l)
        groups.setdefault(key, []).append(l)
    for k, ls in groups.items(): print(f"{label}: {k}" + (f"  ({len(ls)} pages)" if len(ls) > 1 and '<page>' in k else ''))
    if not groups: print(f"{label}: no warnings")

def nbdev_yml_problem():
    "nbdev.yml must be what nbdev's refresh_quarto_yml would write from settings.ini (we do not let it write)."
    from nbdev.quarto import _nbdev_yml
    c = cfg()
    vals = {k: c.get(k) for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    vals['doc_path'] = Path(c.get('doc_path', '_docs')).name
    want = _nbdev_yml.format(**vals)
    have = (nbs/'nbdev.yml').read_text() if (nbs/'nbdev.yml').exists() else ''
    return None if have.strip() == want.strip() else "nbs/nbdev.yml differs from what nbdev writes from settings.ini (update it by hand)"

def _proc_one(o):
    "Process one notebook as nbdev_proc_nbs does; returns None, or the error as text."
    import nbdev.serve_drv
    try: nbdev.serve_drv.main(o)
    except Exception as e:
        cause = f"{type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else ''
        return f"{o[0].name}: {str(e).splitlines()[0]} {cause}".strip()

def proc_all(n_workers=2):
    "nbdev's proc_nbs (nbdev/serve.py), minus its all-or-nothing failure: one broken notebook does not hide the others."
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    from nbdev.serve import _proc_file
    c = get_config(); cache, path = c.config_path/'_proc', c.nbs_path
    files = nbglob(path, func=Path, file_glob='', file_re='')
    for extra in ('_quarto.yml', '_brand.yml'):
        if (path/extra).exists(): files.append(path/extra)
    cache.mkdir(parents=True, exist_ok=True)
    files = files.map(_proc_file, mtime=None, cache=cache, path=path).filter()
    res = parallel(_proc_one, files, n_workers=n_workers, pause=0.01, method='spawn')
    bad = [r for r in res if r]
    for r in bad: print(f"NOTEBOOK FAILED: {r}")
    return 1 if bad else 0

def build():
    "Build the site into _proc/_docs; returns {notebook: [problems]} of the build itself."
    if proc.exists(): shutil.rmtree(proc)  # nbdev's mtime cache can keep stale pages: always build from scratch
    probs = {}
    p = nbdev_yml_problem()
    if p: probs['(build)'] = [p]
    # nbdev_proc_nbs without _ensure_quarto (sudo Quarto install + pip install -e) and without rewriting nbdev.yml
    rc, out = run([sys.executable, '-c', 'import sys, check_docs; sys.exit(check_docs.proc_all())'], 
                  env={**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get('PYTHONPATH')]))})
    for l in out.splitlines():
        if l.startswith('NOTEBOOK FAILED: '):
            name, _, msg = l[len('NOTEBOOK FAILED: '):].partition(': ')
            probs.setdefault(name, []).append(f"nbdev_proc_nbs failed: {msg[:300]}")
    show_warnings('nbdev_proc_nbs', '\n'.join(l for l in out.splitlines() if not l.startswith('NOTEBOOK FAILED: ')))
    if rc and not any(k != '(build)' for k in probs): print(out); raise SystemExit(f"FAILED: nbdev processing (rc={rc})")
    rc, out = run(['smalldocs', 'render', str(proc)])
    show_warnings('smalldocs', out)
    if rc: raise SystemExit(f"FAILED: smalldocs render (rc={rc})")
    return probs

# ------------------------------------------------------------------ static checks
def main_html(s):
    m = re.search(r'<main[^>]*>(.*)</main>', s, re.S)
    return m.group(1) if m else ''

def text(h): return html.unescape(_tag.sub(' ', h))

def outputs(s):
    "(kind, text) of each cell output in a page's HTML: kind is stdout, stderr, display, markdown, ..."
    res = []
    for m in re.finditer(r'<div class="cell-output ([^"]*)">', s):
        start, depth, i = m.end(), 1, m.end()
        for t in re.finditer(r'<(/?)div\b[^>]*>', s[start:]):
            depth += -1 if t.group(1) else 1
            if depth == 0: i = start + t.start(); break
        kind = next((c[len('cell-output-'):] for c in m.group(1).split() if c.startswith('cell-output-')), 'display')
        res.append((kind, s[start:i]))
    return res

def stream_text(h):
    "An output's text as the reader sees it, line for line."
    pre = re.search(r'<pre[^>]*>(.*?)</pre>', h, re.S)
    return html.unescape(_tag.sub('', pre.group(1) if pre else h))

def public_api(lib='nae_nbdev'):
    "{module: public names} from the library's `_modidx` (what nbdev can link)."
    import importlib
    try: d = importlib.import_module(f'{lib}._modidx').d
    except ImportError: return {}
    res = {}
    for k in d['syms'].values():
        for full in k:
            parts = full.split('.')[1:]
            if len(parts) == 2 and not parts[1].startswith('_'): res.setdefault(parts[0], set()).add(parts[1])
    return res

def unlinked_api(m, public):
    "Inline code in the text that names a public API object as `module.name`, which nbdev does not link."
    body = re.sub(r'<a\b[^>]*>.*?</a>|<pre\b.*?</pre>', '', m, flags=re.S)
    res = []
    for c in re.findall(r'<code>([^<]+)</code>', body):
        mo = re.fullmatch(r'(\w+)\.(\w+)(?:\(.*\))?', html.unescape(c).strip())
        if mo and mo.group(2) in public.get(mo.group(1), ()): res.append(mo.group(0))
    return res

def check_page(page, site_dir, pages_by_name=None, git_url=None, doc_url=None, public=None):
    "Static problems of one built page; returns (errors, n_doc_links, n_source_links)."
    errs = []
    s = page.read_text(errors='replace')
    m = main_html(s); txt = text(m)
    if len(txt.split()) < 30: errs.append(f"page is (nearly) empty ({len(txt.split())} words)")
    for b in BAD:
        if b.lower() in txt.lower(): errs.append(f"page shows a raw error ({b!r})")
    for ref in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', s):
        if re.match(r'^(?:[a-z]+:|//|data:)', ref): continue
        if not (page.parent/ref).exists(): errs.append(f"broken local link {ref}")
    ul = unlinked_api(m, public or {})
    if ul: errs.append(f"{len(ul)} API names in backticks do not link ({', '.join(sorted(set(ul))[:6])}{', ...' if len(set(ul)) > 6 else ''}): "
                       "nbdev links the bare name (`fit_nae`), not `module.name`")
    prose = text(re.sub(r'(?s)<pre\b.*?</pre>|<code\b.*?</code>', '', m))    # the words outside code
    broken = re.findall(r'\]\((?:[\w./-]*\.(?:ipynb|html|md))(?:#[\w-]*)?\)', prose)   # text like "](page.ipynb)": a Markdown link
    if broken: errs.append(f"{len(broken)} Markdown link(s) shown as text ({broken[0]}): a backticked API name inside [...] "   # nbdev
                           "became a link of its own; write `name` ([words](page.ipynb)) instead")                         # links
    nt = re.findall(r'(\w+):NoneType=', txt.replace(' ', ''))
    if nt: errs.append(f"signature shows NoneType for {', '.join(sorted(set(nt)))}: annotate (e.g. device:str|torch.device|None=None)")
    for kind, h in outputs(m):
        if kind in ('stdout', 'stderr'):
            lines = stream_text(h).rstrip('\n').split('\n')
            if len(lines) > MAX_STREAM_LINES:
                errs.append(f"{kind} output of {len(lines)} lines (more than {MAX_STREAM_LINES}): \"{lines[0][:60]}\"")
        for p in sorted(set(MACHINE_PATH.findall(text(h)))):
            errs.append(f"output shows a path of the machine that ran it: {p[:80]}")
    n_doc = n_src = 0
    for ref in re.findall(r'href="([^"]+)"', m):
        ref = html.unescape(ref)
        if doc_url and ref.startswith(doc_url):
            n_doc += 1
            if pages_by_name is not None:
                name, _, anchor = ref[len(doc_url):].lstrip('/').partition('#')
                tgt = pages_by_name.get(name)
                if tgt is None: errs.append(f"doc link to {name}, a page the site does not have")
                elif anchor and not anchor.startswith('_') and not re.search(rf'\bid="{re.escape(anchor)}"', tgt.read_text(errors='replace')):
                    errs.append(f"doc link to {name}#{anchor}: no such anchor on that page")
        elif git_url and ref.startswith(git_url + '/blob/'):
            n_src += 1
            fpath, _, line = re.sub(r'^[^/]+/', '', ref[len(git_url + '/blob/'):]).partition('#L')
            f = root/fpath
            if not f.exists(): errs.append(f"source link to {fpath}, which the repository does not have")
            elif line.isdigit() and int(line) > len(f.read_text().splitlines()):
                errs.append(f"source link to {fpath} line {line}, past its end")
    return errs, n_doc, n_src

def subtitle_problem(nb):
    "nbdev keeps only the first line of the `>` description of a notebook's first cell."
    cells = json.loads(nb.read_text()).get('cells', [])
    if not cells or cells[0]['cell_type'] != 'markdown': return None
    quote = [l for l in ''.join(cells[0]['source']).splitlines() if l.startswith('>')]
    return f"the '>' subtitle has {len(quote)} lines; nbdev keeps only the first (make it one line)" if len(quote) > 1 else None

def page_names(site_dir, proc_dir):
    "Page name as doc links spell it (the notebook's `output-file`, e.g. detector.html) -> built page."
    res = {}
    for p in site_dir.rglob('*.html'):
        res[p.relative_to(site_dir).as_posix()] = p
        nb = proc_dir/p.relative_to(site_dir).with_suffix('.ipynb')
        if nb.exists():
            mo = re.search(r'output-file:\s*([\w./-]+\.html)', nb.read_text(errors='replace')[:20000])
            if mo: res[mo.group(1)] = p
    return res

# ------------------------------------------------------------------ browser checks
def find_chromium():
    return shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')

def find_katex():
    for d in [os.environ.get('KATEX_DIR', ''), *KATEX_DIRS]:
        if d and (Path(d)/'katex.min.js').exists() and (Path(d)/'contrib').is_dir(): return Path(d)
    return None

def local_site(site_dir, dest, katex):
    "A scratch copy of the site that loads KaTeX from `katex` (copied in) and runs docs_probe.js on every page."
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(site_dir, dest)
    kd = dest/'site_libs'/'katex'
    shutil.copytree(katex, kd, ignore=shutil.ignore_patterns('*.mjs'))
    ar = kd/'contrib'/'auto-render.min.js'
    if not ar.exists(): shutil.copy(kd/'contrib'/'auto-render.js', ar)  # Debian ships it unminified
    shutil.copy(Path(__file__).with_name('docs_probe.js'), dest/'site_libs'/'docs_probe.js')
    for p in dest.rglob('*.html'):
        off = '../' * (len(p.relative_to(dest).parts) - 1)
        s = p.read_text(errors='replace')
        s = KATEX_CDN.sub(f'{off}site_libs/katex', s)
        s = s.replace('</body>', f'<script src="{off}site_libs/docs_probe.js"></script></body>', 1)
        p.write_text(s)
    return dest

CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
                '--mute-audio', '--virtual-time-budget=5000']

def probe_page(chrome, page, profile, width=1280):
    "Load `page` in headless chromium; returns the probe's findings (dict) or an error string."
    flags = [*CHROME_FLAGS, f'--user-data-dir={profile}', f'--window-size={width},1000']
    try: r = subprocess.run([chrome, *flags, '--dump-dom', page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired: return "chromium timed out loading the page"
    m = re.search(r'<script type="application/json" id="docs-check-result">(.*?)</script>', r.stdout, re.S)
    if r.returncode or not m: return f"chromium could not load the page, or the probe did not run (rc={r.returncode}) {r.stderr[-300:]}"
    return json.loads(html.unescape(m.group(1)))

def screenshot(chrome, page, shot, profile, height, width=1280):
    flags = [*CHROME_FLAGS, f'--user-data-dir={profile}', f'--window-size={width},{min(max(height, 800), 16000)}']
    subprocess.run([chrome, *flags, f'--screenshot={shot}', page.resolve().as_uri()], capture_output=True, timeout=120)

def browser_problems(R):
    "Reader-visible problems from a probe's findings."
    if isinstance(R, str): return [R]
    if R.get('probe_error'): return [f"the page's check script failed: {R['probe_error']}"]
    errs = []
    if R['math'] and not R['katex_loaded']: errs.append(f"KaTeX did not load: {R['math']} formulas shown as raw TeX")
    elif R['unrendered']: errs += [f"formula not rendered by KaTeX: {u}" for u in R['unrendered'][:5]] + ([f"... and {len(R['unrendered']) - 5} more"] if len(R['unrendered']) > 5 else [])
    errs += [f"KaTeX error: {e}" for e in R['katex_errors']]
    errs += [f"raw maths left in the text: {e}" for e in R['raw_math']]
    errs += [f"too wide: {e}" for e in R['wide']]
    errs += [f"output line too long: {e}" for e in R['long_lines']]
    errs += [f"figure shrunk: {e}" for e in R['shrunk']]
    return errs

def browser_check(pages, site_dir, dest, screens=True):
    "{page name: [problems]} for every page, loaded from a local copy of the site; screenshots in dest/../screens."
    chrome, katex = find_chromium(), find_katex()
    if not chrome: return {'(browser)': ["DOCS_BROWSER=1 but no chromium found (apt-get install chromium)"]}
    if not katex: return {'(browser)': ["DOCS_BROWSER=1 but no local KaTeX found (apt-get install libjs-katex, or npm install katex; or set KATEX_DIR)"]}
    local = local_site(site_dir, site_dir.parent/'_browser_site', katex)  # next to the build, not among the artefacts
    shots, profile = dest/'screens', dest/'chrome-profile'
    shots.mkdir(parents=True, exist_ok=True)
    res = {}
    for p in pages:
        lp = local/p.relative_to(site_dir)
        R = probe_page(chrome, lp, profile)
        res[p.name] = browser_problems(R)
        if screens: screenshot(chrome, lp, shots/(p.stem + '.png'), profile, R.get('height', 2000) if isinstance(R, dict) else 2000)
    shutil.rmtree(profile, ignore_errors=True)
    print(f"chromium ({katex} for KaTeX) loaded {len(pages)} pages" + (f"; full-page screenshots in {shots.relative_to(root) if shots.is_relative_to(root) else shots}" if screens else ''))
    return res

# ------------------------------------------------------------------ main
def check_site(site_dir, proc_dir, notebooks, nbs_dir, browser=False, dest=None, doc_url=None, git_url=None, screens=True, public=None):
    "{notebook or page name: [problems]} of a built site."
    probs, pages = {}, []
    by_name = page_names(site_dir, proc_dir)
    n_doc = n_src = 0
    for nb in notebooks:
        page = site_dir/nb.relative_to(nbs_dir).with_suffix('.html')
        e = probs.setdefault(nb.name, [])
        sp = subtitle_problem(nb)
        if sp: e.append(sp)
        if not page.exists(): e.append("no HTML page was built"); continue
        pages.append(page)
        pe, d, s = check_page(page, site_dir, by_name, git_url, doc_url, public)
        e += pe; n_doc += d; n_src += s
    if browser:
        for name, e in browser_check(pages, site_dir, dest, screens=screens).items():
            probs.setdefault(name.replace('.html', '.ipynb') if name != '(browser)' else name, []).extend(e)
    return probs, pages, n_doc, n_src

if __name__ == '__main__':
    c = cfg()
    build_probs = build()
    notebooks = sorted(p for p in nbs.rglob('*.ipynb') if not any(x.startswith(('_', '.')) for x in p.relative_to(nbs).parts))
    browser = os.environ.get('DOCS_BROWSER') == '1'
    out_dir.mkdir(parents=True, exist_ok=True)
    probs, pages, n_doc, n_src = check_site(site, proc, notebooks, nbs, browser=browser, dest=out_dir,
                                            doc_url=c.get('doc_host', '') + c.get('doc_baseurl', '') + '/', git_url=c.get('git_url'),
                                            public=public_api(c.get('lib_path', 'nae_nbdev')))
    for k, v in build_probs.items(): probs.setdefault(k, []).extend(v)
    side = (nbs/'sidebar.yml').read_text() if (nbs/'sidebar.yml').exists() else None
    for nb in notebooks:   # with a hand-written sidebar, a notebook left out of it is a page no reader finds
        if side is not None and not re.search(rf'(?m)^\s*-\s*(?:href:\s*)?{re.escape(nb.relative_to(nbs).as_posix())}\s*$', side):
            probs.setdefault(nb.name, []).append("not in nbs/sidebar.yml: no reader can navigate to it")
    n = 0
    for name, e in probs.items():
        for x in e: print(f"DOCS ERROR: {name}: {x}"); n += 1
    (out_dir/'report.json').write_text(json.dumps(probs, indent=1))
    print(f"docs: {len(pages)}/{len(notebooks)} notebook pages built; {n_doc} doc links, {n_src} source links; "
          f"browser check {'on' if browser else 'off (DOCS_BROWSER=1 turns it on)'}; {n} problems")
    sys.exit(1 if n else 0)
