#!/usr/bin/env node
// Tables from a results file of bench/run.js: medians per peer, each round's figure, peak RSS, CPU
// time per answer and Redis round trips where measured, the targets of bench/suites.js shown
// met / missed, and the ratios between peers.
//
//   node bench/report.js [FILE]     (default: the newest bench/results/*.json)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const config = require('./suites');

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const METRIC = { rps: 'req/s', mbps: 'MB/s', rss: 'peak RSS MB', cpu_us_per_req: 'CPU µs per request', p99_ms: 'p99 ms' };

/** The median of `metric` over a peer's successful rounds (rss: the suite's peak RSS). */
function figure(result, { suite, workload, metric, a }) {
  const s = result.suites?.[suite];
  if (!s) return null;
  if (metric === 'rss') return s.peak_rss_mb?.[a] ?? null;
  const rounds = s.workloads?.[workload]?.rounds?.filter((r) => r.peer === a && r.ok) ?? [];
  return median(rounds.map((r) => r[metric]));
}

function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (digits !== undefined) return x.toFixed(digits);
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd()).join('\n');
}

function render(result) {
  const out = [];
  const m = result.machine ?? {};
  const st = result.settings ?? {};
  let failedRounds = 0;
  out.push(`glance-edge bench, ${result.started}${result.complete ? '' : ' (incomplete run)'}`);
  out.push(`machine: ${m.cpu}, ${m.cores} CPUs; node ${m.node}; nginx ${m.nginx}; undici ${m.undici}; ${m.wrk}; commit ${m.commit}, dist/ built ${m.dist_built}`);
  out.push(
    `settings: ${st.rounds} interleaved round(s) of ${st.duration} s after ${st.warmup} s warm-up, medians shown; image ${st.imageMiB} MiB; servers on CPU ${st.serverCpu}, load on CPU ${st.loadCpu}${st.quick ? '; --quick' : ''}`,
  );
  for (const [name, s] of Object.entries(result.suites ?? {})) {
    out.push('');
    out.push(`== ${name}: ${s.title}${s.seconds ? ` (${s.seconds} s)` : ''}`);
    if (s.error) out.push(`   SUITE FAILED: ${s.error}`);
    if (s.dist_built && m.dist_built && s.dist_built !== m.dist_built) out.push(`   dist/ rebuilt during the run: this suite ran the build of ${s.dist_built}`);
    for (const [peer, why] of Object.entries(s.skipped ?? {})) out.push(`   ${peer}: not run (${why})`);
    for (const [wname, w] of Object.entries(s.workloads ?? {})) {
      const main = wname === 'download' ? 'mbps' : 'rps';
      const client = name === 'clients';
      const cpu = w.rounds.some((r) => r.cpu_us_per_req !== undefined);
      out.push(`-- ${wname}: ${w.what}, ${w.conns} ${client ? 'in flight' : 'connections'}`);
      const rows = [
        ['peer', 'req/s', 'MB/s', ...(client ? [] : ['p50 ms', 'p99 ms']), ...(cpu ? ['CPU µs/req', 'CPUs used', 'procs'] : []), 'peak RSS MB', `rounds (${METRIC[main]})`, ...(cpu ? ['rounds (CPU µs/req)'] : []), 'failed'],
      ];
      const peers = Object.keys(s.peers ?? {});
      for (const peer of peers) {
        const rounds = w.rounds.filter((r) => r.peer === peer);
        const ok = rounds.filter((r) => r.ok);
        const bad = rounds.length - ok.length;
        failedRounds += bad;
        const rss = client ? median(ok.map((r) => r.vmhwm_mb).filter((x) => x !== null)) : s.peak_rss_mb?.[peer];
        rows.push([
          peer,
          fmt(median(ok.map((r) => r.rps)), 0),
          fmt(median(ok.map((r) => r.mbps))),
          ...(client ? [] : [fmt(median(ok.map((r) => r.p50_ms))), fmt(median(ok.map((r) => r.p99_ms)))]),
          ...(cpu ? [fmt(median(ok.map((r) => r.cpu_us_per_req)), 1), fmt(median(ok.map((r) => r.cpu_util)), 2), String(ok[0]?.processes ?? '-')] : []),
          fmt(rss, 1),
          rounds.map((r) => (r.ok ? fmt(r[main], 0) : 'FAIL')).join(' '),
          ...(cpu ? [rounds.map((r) => (r.ok ? fmt(r.cpu_us_per_req, 1) : 'FAIL')).join(' ')] : []),
          bad ? String(bad) : '',
        ]);
      }
      out.push(table(rows));
      for (const r of w.rounds.filter((x) => !x.ok)) out.push(`   ${r.peer} round ${r.round} FAILED: ${r.error}`);
      // Round trips to Redis, timed with no load right after each measured round of a Redis peer.
      for (const peer of Object.keys(s.peers ?? {})) {
        const ok = w.rounds.filter((r) => r.peer === peer && r.ok && r.redis_rtt_p50_ms !== undefined);
        if (!ok.length) continue;
        const pings = ok.reduce((a, r) => a + r.redis_pings, 0);
        out.push(
          `   Redis round trip after each ${peer} round (PING, no load): p50 ${fmt(median(ok.map((r) => r.redis_rtt_p50_ms)), 3)} ms, p99 ${fmt(median(ok.map((r) => r.redis_rtt_p99_ms)), 3)} ms (medians over rounds, ${pings} PINGs); Redis scripts per answer ${fmt(median(ok.map((r) => r.redis_scripts / r.requests)), 2)}`,
        );
      }
    }
    const labels = Object.entries(s.peers ?? {}).map(([p, d]) => `   ${p}: ${d.label}`);
    if (labels.length) out.push(...labels);
    if (s.redis) out.push(`   redis: ${s.redis.label}, CPU ${s.redis.cpu}, peak RSS ${fmt(s.peak_rss_mb?.redis, 1)} MB`);
  }

  const ratioLine = (t) => {
    const a = figure(result, t);
    if (t.metric === 'rss') return { text: `${t.suite}: ${t.a} ${METRIC.rss} = ${fmt(a, 1)}`, value: a };
    if (t.budget) {
      const b = figure(result, { ...t, a: t.b });
      const rtt = figure(result, { ...t, metric: t.budget.rtt });
      const limit = b !== null && rtt !== null ? b + t.budget.rtts * rtt + t.budget.ms : null;
      const text = `${t.suite} ${t.workload}: ${t.a} ${METRIC[t.metric]} = ${fmt(a, 2)}; ${t.b}'s + ${t.budget.rtts} × Redis round trip + ${t.budget.ms} ms = ${fmt(b, 2)} + ${t.budget.rtts} × ${fmt(rtt, 3)} + ${t.budget.ms}`;
      return { text, value: a, limit };
    }
    const b = figure(result, { ...t, a: t.b });
    const v = a !== null && b ? a / b : null;
    return { text: `${t.suite} ${t.workload}: ${t.a} / ${t.b} ${METRIC[t.metric]} = ${fmt(v, 2)}`, value: v };
  };
  let missed = 0;
  const ran = (t) => result.suites?.[t.suite];
  const targets = config.targets.filter(ran);
  if (targets.length) {
    out.push('');
    out.push('== targets');
    const rows = [];
    for (const t of targets) {
      const { text, value, limit } = ratioLine(t);
      let goal;
      let ok;
      if (t.budget) {
        goal = `<= ${fmt(limit, 2)}`;
        ok = value !== null && limit !== null && value <= limit;
      } else if (t.min !== undefined) {
        goal = `>= ${t.min}`;
        ok = value !== null && value >= t.min;
      } else if (t.atMost !== undefined) {
        goal = `<= ${t.atMost}`;
        ok = value !== null && value <= t.atMost;
      } else {
        goal = `< ${t.max}`;
        ok = value !== null && value < t.max;
      }
      if (!ok) missed++;
      rows.push([text, `(target ${goal})`, value === null || (t.budget && limit === null) ? 'NO FIGURE' : ok ? 'met' : 'MISSED']);
    }
    out.push(table(rows));
  }
  const ratios = config.ratios.filter(ran);
  if (ratios.length) {
    out.push('');
    out.push('== ratios');
    for (const t of ratios) out.push(ratioLine(t).text);
  }
  if (result.errors?.length) {
    out.push('');
    out.push('== errors');
    for (const e of result.errors) out.push(e);
  }
  return { text: out.join('\n'), missed, failedRounds };
}

function newest() {
  const dir = path.join(__dirname, 'results');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  if (!files.length) throw new Error(`no results in ${dir}: run npm run bench first`);
  return path.join(dir, files[files.length - 1]);
}

if (require.main === module) {
  const file = process.argv[2] ?? newest();
  const { text } = render(JSON.parse(fs.readFileSync(file, 'utf8')));
  process.stdout.write(`${path.relative(process.cwd(), file)}\n${text}\n`);
}

module.exports = { render, median, figure };
