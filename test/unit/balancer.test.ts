import { describe, expect, it } from 'vitest';
import { createStrategy, SessionTable, STRATEGY_NAMES } from '../../src/balancer/index.js';
import { LeastSessions } from '../../src/balancer/least-sessions.js';
import { RoundRobin } from '../../src/balancer/round-robin.js';
import type { RandomInt } from '../../src/balancer/strategy.js';
import { TwoChoices } from '../../src/balancer/two-choices.js';
import type { Endpoint } from '../../src/endpoints/types.js';
import { seededRandomInt } from '../support/seeded-random.js';


/** A RandomInt that plays back `values` and records the n of every call. */
function scripted(values: number[]): RandomInt & { asked: number[] } {
  const queue = [...values];
  const asked: number[] = [];
  const f = ((n: number) => {
    asked.push(n);
    const v = queue.shift();
    if (v === undefined) throw new Error('scripted random ran out');
    if (v < 0 || v >= n) throw new Error(`scripted value ${v} outside [0, ${n})`);
    return v;
  }) as RandomInt & { asked: number[] };
  f.asked = asked;
  return f;
}

const ep = (id: string, weight = 1): Endpoint => ({ id, name: id, host: `192.0.2.${id.length}`, port: 8080, condition: 'ready', weight });

/** Tables with a small bound: the default one preallocates 200,000 LRU slots (~30 ms). */
const newTable = (): SessionTable => new SessionTable({ max: 10_000 });

/** A table with `n` sessions on each given endpoint. */
function loaded(per: Record<string, number>, table = newTable()): SessionTable {
  for (const [id, n] of Object.entries(per)) for (let i = 0; i < n; i++) table.observe(`${id}-s${i}`, id);
  return table;
}

const tick = () => new Promise((r) => setTimeout(r, 3));

describe('SessionTable', () => {
  it('counts sessions per endpoint', () => {
    const t = newTable();
    t.observe('s1', 'e1');
    t.observe('s2', 'e1');
    t.observe('s3', 'e2');
    t.observe('s1', 'e1'); // seen again: no change
    expect(t.count('e1')).toBe(2);
    expect(t.count('e2')).toBe(1);
    expect(t.count('e3')).toBe(0);
    expect(t.size).toBe(3);
    expect(new Map(t.counts())).toEqual(new Map([['e1', 2], ['e2', 1]]));
  });

  it('moves a session from one endpoint to another', () => {
    const t = newTable();
    t.observe('s1', 'e1');
    t.observe('s2', 'e1');
    t.observe('s1', 'e2');
    expect(t.count('e1')).toBe(1);
    expect(t.count('e2')).toBe(1);
    expect(t.size).toBe(2);
    t.observe('s2', 'e2');
    expect(t.count('e1')).toBe(0);
    expect(t.count('e2')).toBe(2);
    expect([...t.counts().keys()]).toEqual(['e2']);
  });

  it('drops sessions not seen within ttlMs (injected clock), and seeing one again keeps it', async () => {
    let now = 1_000_000;
    const t = new SessionTable({ max: 1000, ttlMs: 60_000, now: () => now });
    t.observe('old', 'e1');
    t.observe('kept', 'e1');
    now += 30_000;
    t.observe('young', 'e1');
    t.observe('kept', 'e1'); // seen again
    now += 31_000; // old: 61 s unseen; young and kept: 31 s
    await tick(); // see the note on the failing test below
    expect(t.count('e1')).toBe(2);
    expect(t.size).toBe(2);
    now += 30_000; // young and kept: 61 s unseen
    await tick();
    expect(t.count('e1')).toBe(0);
    expect(t.counts().size).toBe(0);
    expect(t.size).toBe(0);
  });

  it('counts an expired session anew when it comes back, once', async () => {
    let now = 5_000_000;
    const t = new SessionTable({ max: 1000, ttlMs: 10_000, now: () => now });
    t.observe('s', 'e1');
    now += 20_000;
    await tick();
    t.observe('s', 'e2');
    expect(t.count('e1')).toBe(0);
    expect(t.count('e2')).toBe(1);
    expect(t.size).toBe(1);
  });

  // BUG (src/balancer/session-table.ts, constructor): lru-cache debounces its clock for
  // `ttlResolution` (default 1 ms of real time, via setTimeout), so an injected clock that
  // moves synchronously is not read again: the session below is 120 s past a 60 s TTL by
  // the table's own clock and still counts. Passing `ttlResolution: 0` would fix it.
  it('honours the injected clock when it moves synchronously', () => {
    let now = 1_000_000;
    const t = new SessionTable({ max: 1000, ttlMs: 60_000, now: () => now });
    t.observe('s1', 'e1');
    expect(t.count('e1')).toBe(1);
    now += 120_000;
    expect(t.count('e1')).toBe(0);
  });

  // BUG (same file): lru-cache treats a start time of 0 as "no TTL", so a session first seen
  // when the injected clock reads 0 never expires.
  it('expires a session first seen at clock time 0', async () => {
    let now = 0;
    const t = new SessionTable({ max: 1000, ttlMs: 60_000, now: () => now });
    t.observe('s1', 'e1');
    now += 10 * 60_000;
    await tick();
    expect(t.count('e1')).toBe(0);
  });

  it('bounds memory by max: the least recently seen session drops out and its count goes down', () => {
    const t = new SessionTable({ max: 3 });
    t.observe('s1', 'e1');
    t.observe('s2', 'e1');
    t.observe('s3', 'e2');
    t.observe('s4', 'e2'); // evicts s1
    expect(t.size).toBe(3);
    expect(t.count('e1')).toBe(1);
    expect(t.count('e2')).toBe(2);
    t.observe('s2', 'e1'); // s2 seen again: s3 is now the least recently seen
    t.observe('s5', 'e3'); // evicts s3
    expect(t.count('e1')).toBe(1);
    expect(t.count('e2')).toBe(1);
    expect(t.count('e3')).toBe(1);
  });

  it('keeps counts consistent with its contents under random churn with eviction', () => {
    const rnd = seededRandomInt(7);
    const t = new SessionTable({ max: 100 });
    for (let i = 0; i < 20_000; i++) t.observe(`s${rnd(400)}`, `e${rnd(6)}`);
    let sum = 0;
    for (const [, n] of t.counts()) {
      expect(n).toBeGreaterThan(0);
      sum += n;
    }
    expect(t.size).toBe(100);
    expect(sum).toBe(t.size);
  });
});

describe('LeastSessions', () => {
  it('picks the fewest sessions per unit of weight', () => {
    const s = new LeastSessions(seededRandomInt(1));
    const table = loaded({ e1: 2, e2: 3, e3: 2 });
    // loads: e1 2/1, e2 3/3 = 1, e3 2/1
    expect(s.pick([ep('e1'), ep('e2', 3), ep('e3')], table).id).toBe('e2');
    expect(s.pick([ep('e1'), ep('e2', 3), ep('e3'), ep('e4', 2)], table).id).toBe('e4');
    // Unweighted, the same counts favour e1 or e3.
    expect(['e1', 'e3']).toContain(s.pick([ep('e1'), ep('e2'), ep('e3')], table).id);
  });

  it('breaks ties at random among the tied only', () => {
    const table = loaded({ e1: 1, e3: 1 });
    const candidates = [ep('e1'), ep('e2'), ep('e3'), ep('e4')];
    const picked = new Set<string>();
    for (const k of [0, 1]) {
      const random = scripted([k]);
      picked.add(new LeastSessions(random).pick(candidates, table).id);
      expect(random.asked).toEqual([2]);
    }
    expect(picked).toEqual(new Set(['e2', 'e4']));
  });

  it('spreads ties uniformly, not onto the first endpoint', () => {
    const s = new LeastSessions(seededRandomInt(2));
    const table = newTable();
    const candidates = [ep('e1'), ep('e2'), ep('e3'), ep('e4')];
    const hits = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const id = s.pick(candidates, table).id;
      hits.set(id, (hits.get(id) ?? 0) + 1);
    }
    for (const c of candidates) expect(hits.get(c.id)).toBeGreaterThan(850);
  });

  it('keeps a burst of new sessions exactly balanced', () => {
    const s = new LeastSessions(seededRandomInt(3));
    const table = newTable();
    const candidates = [ep('a'), ep('b'), ep('c'), ep('d')];
    for (let i = 0; i < 40; i++) table.observe(`s${i}`, s.pick(candidates, table).id);
    for (const c of candidates) expect(table.count(c.id)).toBe(10);
  });

  it('scale-out: after 2 -> 4 endpoints, new sessions go to the new ones (>= 90%)', () => {
    const s = new LeastSessions(seededRandomInt(4));
    const table = loaded({ old1: 100, old2: 100 });
    const after = [ep('new1'), ep('new2'), ep('old1'), ep('old2')];
    let toNew = 0;
    for (let i = 0; i < 200; i++) {
      const e = s.pick(after, table);
      table.observe(`n${i}`, e.id);
      if (e.id.startsWith('new')) toNew++;
    }
    expect(toNew).toBeGreaterThanOrEqual(180);
    expect(table.count('old1')).toBeGreaterThanOrEqual(100);
    expect(table.count('old2')).toBeGreaterThanOrEqual(100);
  });

  describe('large lists (kept in buckets by session count from their second pick)', () => {
    const many = (prefix: string, n: number, weight = 1) => Array.from({ length: n }, (_, i) => ep(`${prefix}${i}`, weight));
    const loadOf = (table: SessionTable, e: Endpoint) => table.count(e.id) / e.weight;
    const leastLoad = (table: SessionTable, candidates: readonly Endpoint[]) => Math.min(...candidates.map((e) => loadOf(table, e)));

    it('always picks a least-loaded candidate while sessions come, move, end and expire, and lists change', () => {
      let now = 1_000;
      const table = new SessionTable({ max: 3_000, ttlMs: 60_000, now: () => now });
      const s = new LeastSessions(seededRandomInt(5));
      const rnd = seededRandomInt(6);
      const pool = many('p', 300);
      // The same array until the "view" changes, as a snapshot's ready list is.
      let candidates = pool.slice(0, 200);
      let picks = 0;
      for (let step = 0; step < 6_000; step++) {
        const op = rnd(100);
        if (op < 60) {
          const e = s.pick(candidates, table);
          expect(loadOf(table, e), `pick ${picks++}`).toBe(leastLoad(table, candidates));
          table.observe(`s${step}`, e.id);
        } else if (op < 85) {
          table.observe(`s${rnd(step + 1)}`, pool[rnd(pool.length)]!.id); // a session seen elsewhere, or moved
        } else if (op < 99) {
          now += rnd(2_000); // some sessions expire
        } else {
          const from = rnd(100);
          candidates = pool.slice(from, from + 100 + rnd(100)); // a new view
        }
      }
      expect(picks).toBeGreaterThan(3_000);
    });

    it('keeps a burst of new sessions on 200 endpoints exactly balanced, with ties spread at random', () => {
      const s = new LeastSessions(seededRandomInt(7));
      const table = newTable();
      const candidates = many('e', 200);
      const firstRound: string[] = [];
      for (let i = 0; i < 1_000; i++) {
        const id = s.pick(candidates, table).id;
        if (i < 200) firstRound.push(id);
        table.observe(`s${i}`, id);
      }
      for (const c of candidates) expect(table.count(c.id)).toBe(5);
      // Not in list order: ties go to a random one of the tied.
      expect(firstRound.slice(0, 20)).not.toEqual(candidates.slice(0, 20).map((c) => c.id));
    });

    it('weighs loads over a large list of unequal weights (a pass over it)', () => {
      const s = new LeastSessions(seededRandomInt(8));
      const table = newTable();
      const candidates = [...many('a', 100, 1), ...many('b', 100, 3)];
      for (let i = 0; i < 2_000; i++) {
        const e = s.pick(candidates, table);
        expect(loadOf(table, e)).toBe(leastLoad(table, candidates));
        table.observe(`s${i}`, e.id);
      }
      expect(table.count('b0')).toBe(3 * table.count('a0'));
    });
  });

  it('scale-out, for contrast: round robin gives the new endpoints only their share', () => {
    const s = new RoundRobin();
    const table = loaded({ old1: 100, old2: 100 });
    const after = [ep('new1'), ep('new2'), ep('old1'), ep('old2')];
    let toNew = 0;
    for (let i = 0; i < 200; i++) if (s.pick(after).id.startsWith('new')) toNew++;
    expect(toNew).toBe(100);
    expect(table.count('new1')).toBe(0);
  });
});

describe('RoundRobin', () => {
  it('weights 1, 2, 3 over 600 picks: exactly 100, 200, 300, evenly interleaved', () => {
    const s = new RoundRobin();
    const candidates = [ep('a', 1), ep('b', 2), ep('c', 3)];
    const seq: string[] = [];
    for (let i = 0; i < 600; i++) seq.push(s.pick(candidates).id);
    const total = (id: string) => seq.filter((x) => x === id).length;
    expect([total('a'), total('b'), total('c')]).toEqual([100, 200, 300]);
    // Smooth: every window of 6 consecutive picks holds each endpoint in proportion.
    for (let i = 0; i + 6 <= seq.length; i++) {
      const w = seq.slice(i, i + 6);
      expect([w.filter((x) => x === 'a').length, w.filter((x) => x === 'b').length, w.filter((x) => x === 'c').length], `window at ${i}`).toEqual([1, 2, 3]);
    }
  });

  it('alternates between equal weights', () => {
    const s = new RoundRobin();
    const candidates = [ep('a'), ep('b')];
    const seq = Array.from({ length: 10 }, () => s.pick(candidates).id);
    for (let i = 1; i < seq.length; i++) expect(seq[i]).not.toBe(seq[i - 1]);
  });

  it('only picks among the current candidates, and forgets endpoints that left', () => {
    const s = new RoundRobin();
    const a = ep('a');
    const b = ep('b');
    const c = ep('c');
    expect(s.pick([a, b]).id).toBe('a'); // a -1, b +1
    // b leaves while it is owed a pick; c comes.
    expect(s.pick([a, c]).id).toBe('c');
    // b comes back as new: had its credit been kept it would win here; forgotten, it ties
    // with a and the first one in order wins.
    expect(s.pick([a, b]).id).toBe('a');
    for (let i = 0; i < 20; i++) expect(['a', 'c']).toContain(s.pick([a, c]).id);
  });

  it('gives an endpoint that joins mid-way exactly its share of what follows', () => {
    const s = new RoundRobin();
    for (let i = 0; i < 7; i++) s.pick([ep('a'), ep('b')]);
    const after = [ep('a'), ep('b'), ep('c')];
    const seq = Array.from({ length: 300 }, () => s.pick(after).id);
    expect(seq.filter((x) => x === 'c').length).toBe(100);
  });
});

describe('TwoChoices', () => {
  it('returns the only candidate', () => {
    expect(new TwoChoices(seededRandomInt(1)).pick([ep('solo')], newTable()).id).toBe('solo');
  });

  it('never samples the same candidate twice, and samples the second uniformly among the others', () => {
    const n = 5;
    const candidates = Array.from({ length: n }, (_, i) => ep(`e${i}`));
    for (let i = 0; i < n; i++) {
      // The first sample is the most loaded: whenever the second differs, the second wins.
      const table = loaded({ [`e${i}`]: 10 });
      const second = new Set<string>();
      for (let j = 0; j < n - 1; j++) {
        const random = scripted([i, j]);
        const picked = new TwoChoices(random).pick(candidates, table);
        expect(random.asked).toEqual([n, n - 1]);
        expect(picked.id, `first ${i}, second draw ${j}`).not.toBe(`e${i}`);
        second.add(picked.id);
      }
      expect(second.size).toBe(n - 1);
    }
  });

  it('takes the less loaded (per weight) of the two, in either order', () => {
    const candidates = [ep('e0'), ep('e1'), ep('e2', 4)];
    const table = loaded({ e0: 5, e1: 2, e2: 4 });
    // e0 vs e1 -> e1
    expect(new TwoChoices(scripted([0, 1])).pick(candidates, table).id).toBe('e1');
    expect(new TwoChoices(scripted([1, 0])).pick(candidates, table).id).toBe('e1');
    // e1 (2/1) vs e2 (4/4 = 1) -> e2
    expect(new TwoChoices(scripted([1, 1])).pick(candidates, table).id).toBe('e2');
    expect(new TwoChoices(scripted([2, 1])).pick(candidates, table).id).toBe('e2');
  });

  it('is roughly uniform when loads are equal', () => {
    const s = new TwoChoices(seededRandomInt(9));
    const table = loaded({ e0: 3, e1: 3, e2: 3, e3: 3 });
    const candidates = [ep('e0'), ep('e1'), ep('e2'), ep('e3')];
    const hits = new Map<string, number>();
    for (let i = 0; i < 40_000; i++) {
      const id = s.pick(candidates, table).id;
      hits.set(id, (hits.get(id) ?? 0) + 1);
    }
    for (const c of candidates) {
      expect(hits.get(c.id)).toBeGreaterThan(9_400);
      expect(hits.get(c.id)).toBeLessThan(10_600);
    }
  });

  it('keeps sessions balanced as they accumulate', () => {
    const s = new TwoChoices(seededRandomInt(11));
    const table = newTable();
    const candidates = Array.from({ length: 8 }, (_, i) => ep(`e${i}`));
    for (let i = 0; i < 8000; i++) table.observe(`s${i}`, s.pick(candidates, table).id);
    const counts = candidates.map((c) => table.count(c.id));
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(10);
  });
});

describe('createStrategy', () => {
  it('builds each named strategy', () => {
    for (const name of STRATEGY_NAMES) expect(createStrategy(name).name).toBe(name);
  });

  it('passes the injected random on', () => {
    const random = scripted([3]);
    const s = createStrategy('least-sessions', random);
    const candidates = [ep('a'), ep('b'), ep('c'), ep('d')];
    expect(s.pick(candidates, newTable()).id).toBe('d');
    expect(random.asked).toEqual([4]);
  });
});
