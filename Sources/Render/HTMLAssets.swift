// The page's stylesheet and script, inline so the file opens anywhere without a network.

extension HTMLPage {
    static let css = #"""
        :root {
          --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --rule: #d0d7de; --lane: #8c959f; --head: #f6f8fa;
          --call: #fff8c5; --callb: #d4a72c; --state: #ddf4ff; --stateb: #54aeff; --pkt: #0969da; --data: #1a7f37;
          --kern: #6e7781; --rst: #cf222e; --sel: #fff1a8; --panel: #f6f8fa; --code: #eff2f5;
          color-scheme: light;
        }
        @media (prefers-color-scheme: dark) {
          :root:not([data-theme=light]) {
            --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --rule: #30363d; --lane: #6e7681; --head: #161b22;
            --call: #3b2e00; --callb: #9e6a03; --state: #0c2d6b; --stateb: #1f6feb; --pkt: #58a6ff; --data: #3fb950;
            --kern: #8b949e; --rst: #ff7b72; --sel: #3b3400; --panel: #161b22; --code: #1f242c;
            color-scheme: dark;
          }
        }
        :root[data-theme=dark] {
          --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --rule: #30363d; --lane: #6e7681; --head: #161b22;
          --call: #3b2e00; --callb: #9e6a03; --state: #0c2d6b; --stateb: #1f6feb; --pkt: #58a6ff; --data: #3fb950;
          --kern: #8b949e; --rst: #ff7b72; --sel: #3b3400; --panel: #161b22; --code: #1f242c;
          color-scheme: dark;
        }
        * { box-sizing: border-box; }
        html, body { margin: 0; height: 100%; }
        body {
          background: var(--bg); color: var(--fg); display: flex; flex-direction: column;
          font: 13px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK JP", "Noto Sans JP",
            "Hiragino Sans", "Yu Gothic", "IPAGothic", "IPAexGothic", "DejaVu Sans", sans-serif;
        }
        code, pre, .mono {
          font-family: ui-monospace, "DejaVu Sans Mono", "Noto Sans Mono CJK JP", "Noto Sans Mono", "IPAGothic", monospace;
        }
        header {
          display: flex; flex-wrap: wrap; align-items: center; gap: 8px 20px; padding: 8px 16px;
          border-bottom: 1px solid var(--rule); background: var(--head);
        }
        h1 { font-size: 15px; margin: 0; font-weight: 600; }
        #controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; color: var(--muted); }
        select, button {
          font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--rule);
          border-radius: 6px; padding: 2px 8px;
        }
        button:disabled { opacity: .4; }
        main { flex: 1; display: flex; min-height: 0; }
        #view { flex: 1; overflow: auto; min-width: 0; }
        #details {
          width: 360px; flex: none; overflow: auto; padding: 12px 16px; border-left: 1px solid var(--rule);
          background: var(--panel);
        }
        #details h2 { font-size: 14px; margin: 0 0 8px; }
        #details h3 { font-size: 12px; margin: 14px 0 4px; color: var(--muted); text-transform: uppercase; }
        #details table { border-collapse: collapse; width: 100%; }
        #details td { padding: 1px 6px 1px 0; vertical-align: top; word-break: break-all; }
        #details td:first-child { color: var(--muted); white-space: nowrap; word-break: normal; }
        #details pre {
          background: var(--code); padding: 6px 8px; border-radius: 6px; margin: 0; font-size: 11.5px;
          white-space: pre-wrap; word-break: break-all;
        }
        #details pre.hex { white-space: pre; overflow-x: auto; word-break: normal; }
        .hint { color: var(--muted); }
        .kernelnote { color: var(--kern); font-style: italic; }
        .call .source { font-size: 11px; fill: var(--muted); }
        .callref { white-space: pre-wrap; }
        .pcomment { font-size: 11px; fill: var(--muted); }
        svg { display: block; font-size: 12px; }
        svg text { fill: var(--fg); }
        .lane { stroke: var(--lane); stroke-width: 1.2; stroke-dasharray: 4 4; }
        .lanehead rect { fill: var(--head); stroke: var(--lane); }
        .lanehead .name { font-weight: 600; font-size: 13px; }
        .lanehead .addr, .time { fill: var(--muted); font-size: 11px; }
        .callbox { fill: var(--call); stroke: var(--callb); }
        .act { fill: var(--callb); }
        .call.failed .callbox { stroke: var(--rst); }
        .statepill { fill: var(--state); stroke: var(--stateb); }
        .state text { font-size: 11px; }
        .packet .wire { stroke: var(--pkt); stroke-width: 1.6; }
        .packet .head { fill: var(--pkt); }
        .packet.data .wire { stroke: var(--data); }
        .packet.data .head { fill: var(--data); }
        .packet.rst .wire { stroke: var(--rst); }
        .packet.rst .head { fill: var(--rst); }
        .packet.kernel .wire { stroke: var(--kern); stroke-dasharray: 6 4; }
        .packet.kernel .head { fill: var(--kern); }
        .packet.kernel .plabel { fill: var(--muted); }
        .packet .kreason { fill: var(--kern); font-size: 11px; font-style: italic; }
        .packet .hit { stroke: transparent; stroke-width: 16; fill: none; }
        .packet .bg { fill: transparent; }
        .packet { cursor: pointer; }
        .packet:hover .bg, .packet.selected .bg { fill: var(--sel); }
        .packet.selected .wire { stroke-width: 2.6; }
        """#

    static let script = #"""
        (function () {
          'use strict';
          var D = JSON.parse(document.getElementById('flow-data').textContent);
          var S = D.strings, NS = 'http://www.w3.org/2000/svg', PER = D.perPage;
          var svg = document.getElementById('diagram'), details = document.getElementById('details');
          var st = { stream: 'all', page: 0, pinned: null };
          var byFrame = {};
          D.rows.forEach(function (r) { if (r.kind === 'packet') byFrame[r.frame] = r; });
          var laneById = {};
          D.lifelines.forEach(function (l) { laneById[l.id] = l; });

          function setTheme(t) {
            if (t === 'dark' || t === 'light') document.documentElement.setAttribute('data-theme', t);
          }
          try { setTheme(localStorage.getItem('packetflow-theme')); } catch (e) {}
          location.hash.slice(1).split('&').forEach(function (kv) {
            var i = kv.indexOf('=');
            if (i < 0) return;
            var k = kv.slice(0, i), v = decodeURIComponent(kv.slice(i + 1));
            if (k === 'stream') st.stream = v;
            else if (k === 'page') st.page = Math.max(0, (parseInt(v, 10) || 1) - 1);
            else if (k === 'frame') st.pinned = parseInt(v, 10);
            else if (k === 'theme') setTheme(v);
          });

          function el(tag, attrs, text, parent) {
            var e = document.createElementNS(NS, tag);
            for (var k in attrs) e.setAttribute(k, attrs[k]);
            if (text != null) e.textContent = text;
            if (parent) parent.appendChild(e);
            return e;
          }
          function h(tag, text, parent, cls) {
            var e = document.createElement(tag);
            if (text != null) e.textContent = text;
            if (cls) e.className = cls;
            if (parent) parent.appendChild(e);
            return e;
          }
          var ctx = document.createElement('canvas').getContext('2d');
          var family = getComputedStyle(document.body).fontFamily;
          function width(text, size, weight) {
            ctx.font = (weight || '') + ' ' + (size || 12) + 'px ' + family;
            return ctx.measureText(text || '').width;
          }

          // Rows of the chosen stream. A call belongs to a stream when it sent one of the stream's packets.
          function streamRows() {
            if (st.stream === 'all') return D.rows;
            var s = parseInt(st.stream, 10), calls = {};
            D.rows.forEach(function (r) {
              if (r.kind === 'packet' && r.stream === s && r.callId != null) calls[r.callId] = true;
            });
            return D.rows.filter(function (r) {
              if (r.kind === 'packet') return r.stream === s;
              return calls[r.kind === 'call' ? r.id : r.call] === true;
            });
          }
          function paginate(rows) {
            var pages = [[]], n = 0;
            rows.forEach(function (r) {
              if (r.kind === 'packet') {
                if (n > 0 && n % PER === 0) pages.push([]);
                n++;
              }
              pages[pages.length - 1].push(r);
            });
            return pages;
          }
          function lanesFor(rows) {
            if (st.stream === 'all') return D.lifelines;
            var used = {};
            rows.forEach(function (r) {
              if (r.kind === 'packet') { used[r.from] = used[r.to] = true; }
              else if (r.kind === 'call') used[r.actor] = true;
              else r.changes.forEach(function (c) { used[c.actor] = true; });
            });
            return D.lifelines.filter(function (l) { return used[l.id]; });
          }

          function controls(all, pages) {
            var streams = {}, order = [];
            D.rows.forEach(function (r) {
              if (r.kind !== 'packet' || r.stream == null) return;
              if (!(r.stream in streams)) { streams[r.stream] = 0; order.push(r.stream); }
              streams[r.stream]++;
            });
            var sel = document.getElementById('stream');
            sel.textContent = '';
            var total = D.rows.filter(function (r) { return r.kind === 'packet'; }).length;
            var o = h('option', S.allStreams + ' (' + total + ')', sel); o.value = 'all';
            order.sort(function (a, b) { return a - b; }).forEach(function (s) {
              var o = h('option', S.stream + ' ' + s + ' (' + streams[s] + ')', sel); o.value = String(s);
            });
            sel.value = st.stream;
            sel.disabled = order.length < 2 && st.stream === 'all';
            document.getElementById('stream-label').textContent = S.stream;
            var calls = D.rows.filter(function (r) { return r.kind === 'call'; }).length;
            document.getElementById('summary').textContent =
              total + ' ' + S.packets + (calls ? ' · ' + calls + ' ' + S.calls : '');
            document.getElementById('pager').style.display = pages.length > 1 ? '' : 'none';
            document.getElementById('page').textContent = S.page + ' ' + (st.page + 1) + ' / ' + pages.length;
            document.getElementById('prev').textContent = S.prev;
            document.getElementById('next').textContent = S.next;
            document.getElementById('prev').disabled = st.page === 0;
            document.getElementById('next').disabled = st.page >= pages.length - 1;
            document.getElementById('theme').textContent = S.theme;
          }

          // The line under an arrow: why a kernel sent it, else the packet's first pcapng comment.
          function note(r) { return r.kernel != null ? r.kernel : (r.comments ? r.comments[0] : null); }

          function draw() {
            var all = streamRows(), pages = paginate(all);
            st.page = Math.min(st.page, pages.length - 1);
            var rows = pages[st.page], lanes = lanesFor(all);
            controls(all, pages);
            while (svg.firstChild) svg.removeChild(svg.firstChild);

            var LEFT = 120, gap = 260;
            rows.forEach(function (r) {
              if (r.kind === 'packet') gap = Math.max(gap, width(r.label) + 60, width(note(r), 11) + 40);
              else if (r.kind === 'call') gap = Math.max(gap, width(r.text) + 48, width(r.source, 11) * 1.2 + 48);
            });
            var heads = lanes.map(function (l) {
              return Math.max(width(l.label, 13, 600), width(l.address, 11)) + 24;
            });
            heads.forEach(function (w) { gap = Math.max(gap, w + 24); });
            gap = Math.min(gap, 760);
            var x = {};
            var x0 = LEFT + Math.max(80, (heads[0] || 0) / 2 + 10);
            lanes.forEach(function (l, i) { x[l.id] = x0 + i * gap; });
            var lastLane = lanes.length ? lanes[lanes.length - 1].id : null;

            var layer = el('g', {}, null, svg), body = el('g', {}, null, svg);
            lanes.forEach(function (l, i) {
              var g = el('g', { 'class': 'lanehead', 'data-lane': l.id }, null, svg), w = heads[i];
              el('rect', { x: x[l.id] - w / 2, y: 6, width: w, height: l.address ? 42 : 28, rx: 6 }, null, g);
              el('text', { x: x[l.id], y: 24, 'text-anchor': 'middle', 'class': 'name' }, l.label, g);
              if (l.address) el('text', { x: x[l.id], y: 40, 'text-anchor': 'middle', 'class': 'addr mono' }, l.address, g);
            });

            var y = 74;
            rows.forEach(function (r) {
              if (r.kind === 'call') {
                var g = el('g', { 'class': 'call' + (/= -1 /.test(r.text) ? ' failed' : ''), 'data-call': r.id }, null, body);
                if (r.note || r.source) el('title', {}, [r.note, r.source].filter(Boolean).join('\n'), g);
                var lx = x[r.actor] != null ? x[r.actor] : x0, end = r.actor === lastLane && lanes.length > 1;
                var tw = width(r.text), tx = end ? lx - 14 - tw : lx + 14;
                el('text', { x: 8, y: y + 4, 'class': 'time mono' }, r.t, g);
                el('rect', { x: tx - 6, y: y - 11, width: tw + 12, height: 21, rx: 4, 'class': 'callbox' }, null, g);
                el('rect', { x: lx - 4, y: y - 10, width: 8, height: 20, rx: 2, 'class': 'act' }, null, g);
                el('text', { x: tx, y: y + 4 }, r.text, g);
                // The program's line that made the call (trace of a Python program), under its box.
                if (r.source) {
                  var sw = width(r.source, 11), sx = end ? lx - 14 - sw : lx + 14;
                  el('text', { x: sx, y: y + 23, 'class': 'source mono' }, r.source, g);
                  y += 16;
                }
                y += 30;
              } else if (r.kind === 'state') {
                var g = el('g', { 'class': 'state', 'data-call': r.call }, null, body);
                r.changes.forEach(function (c) {
                  if (x[c.actor] == null) return;
                  var w = width(c.state, 11) + 18;
                  el('title', {}, S.state + ' → ' + c.state, g);
                  el('rect', { x: x[c.actor] - w / 2, y: y - 10, width: w, height: 18, rx: 9, 'class': 'statepill' }, null, g);
                  el('text', { x: x[c.actor], y: y + 3, 'text-anchor': 'middle' }, c.state, g);
                });
                y += 26;
              } else {
                var k = r.kernel != null, n = note(r), top = y - 16, hgt = n != null ? 44 : 32;
                var g = el('g', {
                  'class': 'packet ' + (r.cls || '') + (k ? ' kernel' : ''), 'data-frame': r.frame,
                  'data-stream': r.stream == null ? '' : r.stream
                }, null, body);
                var x1 = x[r.from], x2 = x[r.to], ly = y + 4;
                el('rect', { x: 0, y: top, width: 1, height: hgt, 'class': 'bg' }, null, g);
                el('text', { x: 8, y: ly - 4, 'class': 'time mono' }, '[' + r.frame + '] ' + r.t, g);
                if (x1 == null || x2 == null || x1 === x2) {
                  var sx = x1 != null ? x1 : x0;
                  el('path', { d: 'M' + sx + ' ' + (ly - 6) + 'h40v12h-34', fill: 'none', 'class': 'wire' }, null, g);
                  el('polygon', { points: sx + ',' + (ly + 6) + ' ' + (sx + 9) + ',' + (ly + 1) + ' ' + (sx + 9) + ',' + (ly + 11), 'class': 'head' }, null, g);
                  el('text', { x: sx + 48, y: ly + 2, 'class': 'plabel' }, r.label, g);
                  x1 = x2 = sx;
                } else {
                  var dir = x2 > x1 ? 1 : -1, tip = x2 - dir * 2;
                  el('line', { x1: x1, y1: ly, x2: x1 + (tip - x1), y2: ly, 'class': 'hit' }, null, g);
                  el('line', { x1: x1, y1: ly, x2: tip - dir * 8, y2: ly, 'class': 'wire' }, null, g);
                  el('polygon', {
                    points: tip + ',' + ly + ' ' + (tip - dir * 11) + ',' + (ly - 5) + ' ' + (tip - dir * 11) + ',' + (ly + 5),
                    'class': 'head'
                  }, null, g);
                  el('text', { x: (x1 + x2) / 2, y: ly - 6, 'text-anchor': 'middle', 'class': 'plabel' }, r.label, g);
                  if (n != null) {
                    var cls = k ? 'kreason' : 'pcomment';
                    el('text', { x: (x1 + x2) / 2, y: ly + 15, 'text-anchor': 'middle', 'class': cls }, n, g);
                  }
                }
                y += hgt;
              }
            });
            var bottom = y + 4;
            lanes.forEach(function (l) {
              el('line', { x1: x[l.id], y1: 50, x2: x[l.id], y2: bottom, 'class': 'lane' }, null, layer);
            });
            var box = svg.getBBox();
            var w = Math.ceil(Math.max(box.x + box.width + 24, x0 + (lanes.length - 1) * gap + 120));
            svg.setAttribute('width', w);
            svg.setAttribute('height', Math.ceil(bottom + 12));
            svg.setAttribute('viewBox', '0 0 ' + w + ' ' + Math.ceil(bottom + 12));
            Array.prototype.forEach.call(svg.querySelectorAll('.packet .bg'), function (b) { b.setAttribute('width', w); });
            if (st.pinned != null) mark(st.pinned);
            show(st.pinned);
            var hash = 'stream=' + st.stream + '&page=' + (st.page + 1) + (st.pinned != null ? '&frame=' + st.pinned : '');
            try { history.replaceState(null, '', '#' + hash); } catch (e) {}
          }

          function mark(frame) {
            Array.prototype.forEach.call(svg.querySelectorAll('.packet.selected'), function (g) { g.classList.remove('selected'); });
            var g = svg.querySelector('.packet[data-frame="' + frame + '"]');
            if (g) g.classList.add('selected');
          }

          function bytesOf(hex) {
            var out = new Uint8Array(hex.length / 2);
            for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
            return out;
          }
          function hexdump(b) {
            var lines = [];
            // Eight bytes a line: sixteen do not fit the panel next to their text column.
            for (var o = 0; o < b.length; o += 8) {
              var hx = '', asc = '';
              for (var i = 0; i < 8; i++) {
                if (o + i < b.length) {
                  var v = b[o + i];
                  hx += (v < 16 ? '0' : '') + v.toString(16) + ' ';
                  asc += v >= 32 && v < 127 ? String.fromCharCode(v) : '.';
                } else hx += '   ';
              }
              lines.push(('000' + o.toString(16)).slice(-4) + '  ' + hx + ' ' + asc);
            }
            return lines.join('\n');
          }

          function show(frame) {
            details.textContent = '';
            var r = frame != null ? byFrame[frame] : null;
            h('h2', S.details + (r ? ' — [' + r.frame + '] ' + r.label : ''), details);
            if (!r) { h('p', S.hint, details, 'hint'); return; }
            if (r.kernel) h('p', S.kernel + ': ' + r.kernel.replace(/^[^:]*: /, ''), details, 'kernelnote');
            h('h3', S.call, details);
            h('p', r.call || S.noCall, details, r.call ? 'mono callref' : 'hint');
            if (r.comments) {
              h('h3', S.comments, details);
              r.comments.forEach(function (c) { h('p', c, details, 'mono callref'); });
            }
            h('h3', S.fields, details);
            var t = h('table', null, details);
            r.fields.forEach(function (f) {
              var tr = h('tr', null, t);
              h('td', f.k, tr);
              h('td', f.v, tr, 'mono');
            });
            h('h3', S.payload + (r.payloadLen ? ' (' + r.payloadLen + ' ' + S.bytes +
              (r.payload.length / 2 < r.payloadLen ? ', ' + S.shown + ' ' + r.payload.length / 2 : '') + ')' : ''), details);
            if (r.payload) {
              var b = bytesOf(r.payload);
              h('h3', S.hex, details);
              h('pre', hexdump(b), details, 'hex');
              h('h3', S.text, details);
              h('pre', new TextDecoder('utf-8').decode(b), details, 'utf8');
            } else if (r.preview) {
              h('pre', r.preview, details, 'utf8');
            } else {
              h('p', S.noPayload, details, 'hint');
            }
          }

          function packetOf(e) {
            var g = e.target.closest ? e.target.closest('.packet') : null;
            return g ? parseInt(g.getAttribute('data-frame'), 10) : null;
          }
          svg.addEventListener('click', function (e) {
            var f = packetOf(e);
            if (f == null) return;
            st.pinned = st.pinned === f ? null : f;
            mark(st.pinned);
            show(st.pinned);
          });
          svg.addEventListener('mouseover', function (e) { var f = packetOf(e); if (f != null) show(f); });
          svg.addEventListener('mouseout', function (e) { if (packetOf(e) != null) show(st.pinned); });
          document.getElementById('stream').addEventListener('change', function (e) {
            st.stream = e.target.value; st.page = 0; draw();
          });
          document.getElementById('prev').addEventListener('click', function () { st.page--; draw(); });
          document.getElementById('next').addEventListener('click', function () { st.page++; draw(); });
          document.getElementById('theme').addEventListener('click', function () {
            var cur = document.documentElement.getAttribute('data-theme') ||
              (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
            var next = cur === 'dark' ? 'light' : 'dark';
            setTheme(next);
            try { localStorage.setItem('packetflow-theme', next); } catch (e) {}
          });
          draw();
        })();
        """#
}
