// Injected by scripts/check_docs.py into a scratch copy of each page (never into the site itself).
// After KaTeX has rendered, it measures what a reader would notice and writes the findings, as JSON,
// into <script id="docs-check-result">, which chromium's --dump-dom hands back to the Python side.
(function () {
  const SKIP_TEXT = 'pre, code, script, style, textarea, .katex, .katex-display, .katex-error, .sourceCode';
  const snip = (s, n = 90) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const where = (el) => {
    let h = el, sec = null;
    while (h && !sec) { sec = h.closest && h.closest('section[id]'); h = h.parentElement; }
    return sec ? '#' + sec.id : '';
  };
  const desc = (el) => {
    const cls = (el.className && typeof el.className === 'string') ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '';
    return `<${el.tagName.toLowerCase()}${cls}> ${where(el)} "${snip(el.textContent, 60)}"`;
  };
  function probe() {
    const R = { katex_loaded: !!window.katex, math: 0, unrendered: [], katex_errors: [], raw_math: [],
                wide: [], long_lines: [], shrunk: [], height: document.documentElement.scrollHeight, column: 0 };
    const main = document.querySelector('main');
    if (!main) { R.no_main = true; return R; }
    const col = main.getBoundingClientRect();
    R.column = Math.round(col.width);
    // maths: every span.math must hold rendered KaTeX, and KaTeX must report no error
    main.querySelectorAll('span.math').forEach(m => {
      R.math++;
      if (!m.querySelector('.katex')) R.unrendered.push(desc(m));
    });
    main.querySelectorAll('.katex-error').forEach(e => R.katex_errors.push(`${where(e)} ${snip(e.getAttribute('title'), 120)}: ${snip(e.textContent, 60)}`));
    // with throwOnError: false an undefined command is drawn in KaTeX's error colour (#cc0000) instead
    main.querySelectorAll('.katex mstyle[mathcolor="#cc0000"]').forEach(e => {
      const k = e.closest('.katex'), tex = k && k.querySelector('annotation');
      R.katex_errors.push(`${where(e)} undefined command ${snip(e.textContent, 40)} in ${snip(tex ? tex.textContent : '', 80)}`);
    });
    // leftover raw maths in the reader's text (code and outputs shown as code are left alone)
    const raw = /\\\(|\\\[|\$[^$\n]{1,300}?\$/;
    const tw = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let n = tw.nextNode(); n; n = tw.nextNode()) {
      const p = n.parentElement;
      if (!p || p.closest(SKIP_TEXT)) continue;
      const m = n.textContent.match(raw);
      if (m) R.raw_math.push(`${where(p)} "${snip(n.textContent.slice(Math.max(0, m.index - 30), m.index + 60))}"`);
    }
    // width: an element that sticks out of the content column, or a box the reader must scroll sideways
    const reported = new Set();
    const inReported = (el) => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) if (reported.has(a)) return true; return false; };
    const clips = (el) => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) { const o = getComputedStyle(a).overflowX; if (o !== 'visible') return true; } return false; };
    main.querySelectorAll('*').forEach(el => {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || inReported(el)) return;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || st.display === 'none') return;
      if ((r.right > col.right + 2 || r.left < col.left - 2) && !clips(el)) {
        reported.add(el); R.wide.push(`${desc(el)} is ${Math.round(r.width)} px wide, sticks out of the ${Math.round(col.width)} px column`);
      } else if ((st.overflowX === 'auto' || st.overflowX === 'scroll') && el.scrollWidth > el.clientWidth + 2) {
        reported.add(el); R.wide.push(`${desc(el)} scrolls sideways: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
      }
    });
    // outputs: a line longer than the column holds, whether it wraps or scrolls
    main.querySelectorAll('.cell-output-stdout pre, .cell-output-stderr pre, .cell-output-display > pre').forEach(pre => {
      const probe = document.createElement('span');
      probe.textContent = 'M'.repeat(100);
      probe.style.cssText = 'visibility:hidden;position:absolute;white-space:pre';
      pre.appendChild(probe);
      const cw = probe.getBoundingClientRect().width / 100;
      probe.remove();
      const cs = getComputedStyle(pre);
      const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      const fit = Math.floor(inner / cw);
      // prose wraps harmlessly; a line of aligned columns (a fixed-width table) does not
      const table = (l) => (l.match(/\S {2,}(?=\S)/g) || []).length >= 2;
      const long = pre.textContent.split('\n').filter(l => l.length > fit && table(l));
      if (cw > 0 && long.length)
        R.long_lines.push(`${where(pre)} a fixed-width table ${Math.max(...long.map(l => l.length))} characters wide in a column of ${fit}: "${snip(long[0], 70)}" (make it a Markdown table)`);
    });
    // figures shrunk so far that their text is unreadable (a 20-inch figure in an 8-inch column)
    main.querySelectorAll('img').forEach(img => {
      // at most 10 inches: matplotlib's inline figures are 200 px an inch (retina), a 10-inch one shows at 1/3 here
      if (img.naturalWidth && img.clientWidth && img.clientWidth < 0.3 * img.naturalWidth)
        R.shrunk.push(`${where(img)} figure ${img.naturalWidth}x${img.naturalHeight} px shown ${img.clientWidth} px wide (${Math.round(100 * img.clientWidth / img.naturalWidth)}%)`);
    });
    return R;
  }
  function done() {
    let R;
    try { R = probe(); } catch (e) { R = { probe_error: String(e) }; }
    const s = document.createElement('script');
    s.type = 'application/json'; s.id = 'docs-check-result';
    s.textContent = JSON.stringify(R);
    document.body.appendChild(s);
  }
  window.addEventListener('load', () => setTimeout(done, 300));
})();
