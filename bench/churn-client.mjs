// The client side every connection-churn benchmark shares (bench/node-churn.mjs and
// bench/churn-*.mjs): one WebSocket cycle against the demo protocol, the server's CPU time
// read from /proc, and the median the figures are made of. Runs in Node only: the
// benchmarks whose servers run under Bun or Deno import it on their client side alone.
import fs from 'node:fs';
import WebSocket from 'ws';

let userSeq = 0;
/**
 * One connect -> send -> echo -> close cycle; rejects on anything unexpected. Users rotate
 * over 200, so no cycle is ever refused for a limit.
 * @param {string} url ws://host:port/path
 * @returns {Promise<void>}
 */
export function cycle(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?user=u${userSeq++ % 200}`);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('open', () => ws.send('ping'));
    ws.once('message', (data) => {
      if (JSON.parse(data.toString()).data !== 'ping') reject(new Error('bad echo'));
      ws.close();
    });
    ws.once('close', () => resolve());
  });
}

/** @param {number[]} xs */
export function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * utime + stime of a whole process from /proc/<pid>/stat, in microseconds. Counted in
 * 10 ms clock ticks (USER_HZ 100), which is coarse for one cycle: see processCpuUs.
 * @param {number} pid
 */
export function statCpuUs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) " (comm may contain spaces): utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/**
 * CPU microseconds a process has used so far, all its threads (a runtime's GC and JIT
 * threads count too): the sum of each thread's run time in
 * /proc/<pid>/task/<tid>/schedstat, in nanoseconds, which resolves a cycle. A thread that
 * exits meanwhile is skipped; without schedstat, /proc/<pid>/stat's ticks.
 * @param {number} pid
 */
export function processCpuUs(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return statCpuUs(pid);
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited meanwhile
    }
  }
  return ns / 1000;
}
