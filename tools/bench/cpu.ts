/**
 * CPU time a process has used, read from outside it: what the benchmark divides by the requests served.
 *
 * Why CPU time rather than req/s: on a shared machine a neighbour can take the cores away for part of
 * a round, which lowers req/s by any amount, but the work the server does per request stays the same.
 * Interference only ever adds CPU time (cache misses, a colder branch predictor), it never removes any,
 * so the least CPU time per request over many rounds is the least disturbed sample.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createClient } from 'redis';

/** Clock ticks per second of /proc's utime and stime (100 on Linux, in practice). */
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * User and system (kernel) CPU time of a process and all its threads (GC helpers included), in
 * microseconds. Linux only (/proc/PID/stat, fields 14 and 15); resolution one tick (10 ms), so a load
 * of a few seconds reads to about 1%.
 */
export function processCpuSplitMicros(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    user: (Number(fields[11]) / TICKS_PER_SECOND) * 1e6,
    system: (Number(fields[12]) / TICKS_PER_SECOND) * 1e6,
  };
}

export interface RedisCpu {
  /** CPU time the Redis server (or servers, together) has used so far, in microseconds. */
  read(): Promise<number>;
  close(): Promise<void>;
}

const plainClient = (url: string) => createClient({ url });

/**
 * CPU time Redis has used (INFO cpu, microsecond resolution), for the rows of the stores that keep
 * sessions in Redis: one server, or every node of a Cluster, summed (each node answers for itself).
 */
export async function redisCpuReader(urls: string | readonly string[]): Promise<RedisCpu> {
  const clients: Array<ReturnType<typeof plainClient>> = [];
  try {
    for (const url of typeof urls === 'string' ? [urls] : urls) {
      const client = plainClient(url);
      clients.push(client);
      await client.connect();
    }
  } catch (error) {
    for (const client of clients) client.destroy();
    throw error;
  }
  const cpuOf = async (client: (typeof clients)[number]) => {
    const info = await client.info('cpu');
    const seconds = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
    return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6;
  };
  return {
    async read() {
      const each = await Promise.all(clients.map(cpuOf));
      return each.reduce((sum, micros) => sum + micros, 0);
    },
    close: async () => void (await Promise.all(clients.map((client) => client.quit()))),
  };
}

/**
 * Pins a process and all its threads to the given CPUs (Linux `taskset`); false when that is not
 * possible here. The benchmark puts every server on one CPU and its load generator on another, so the
 * servers measured together share one core's caches and its sibling's load, instead of each landing
 * on whichever core the scheduler picks that round.
 */
export function pinToCpus(pid: number, cpuList: string): boolean {
  try {
    execFileSync('taskset', ['--all-tasks', '--pid', '--cpu-list', cpuList, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
