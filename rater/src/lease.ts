// Partition ownership through leases in NATS KV. Every rater process heartbeats a member key
// and holds a lease key per owned partition, renewed every ttl/3 with a revision-checked
// update (so two processes can never both renew one lease). A process aims at
// ceil(partitions / live members) partitions: it takes free or expired leases up to that,
// and hands back extras (stopping their runners first) so a newcomer gets its share.
//
// A lease alone is not a fence (a paused process may wake up after its lease expired), so
// the partition checkpoint is fenced as well: each new owner bumps its KV revision at start
// and every checkpoint write is revision-checked, so a stale owner's next write fails and it
// stops before acking anything (see partition.ts). Expiry compares wall clocks of processes:
// keep clocks in sync (NTP) and the TTL well above the skew.
import type { KV } from '@drawdown/nats';
import type { Logger } from '@drawdown/log';
import { gauge } from '@drawdown/metrics';

const ownedGauge = gauge('drawdown_rater_partitions_owned', 'Partitions this rater process holds a lease on');

interface LeaseValue {
  owner: string;
  expiresAt: number;
}

export interface LeaseOptions {
  kv: KV;
  /** This process; a restarted process with the same id takes its own leases back at once. */
  owner: string;
  partitions: number[];
  ttlMs: number;
  log: Logger;
  /** Start processing partition p (the lease is held). */
  acquired(p: number): void;
  /** Stop processing partition p and wait until it is stopped. */
  release(p: number): Promise<void>;
}

const leaseKey = (p: number) => `lease.${p}`;
const memberKey = (owner: string) => `member.${owner.replace(/[^A-Za-z0-9_=-]/g, '_')}`;

export class LeaseManager {
  private readonly owned = new Map<number, number>(); // partition -> lease revision
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: LeaseOptions) {}

  get partitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    await this.tick();
    // stop() may have come during the first round: it found no timer to clear.
    if (!this.stopped) this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.o.ttlMs / 3)));
  }

  /** Drops a partition whose runner found itself fenced (another owner took over). */
  lost(p: number): void {
    if (this.owned.delete(p)) this.o.log.warn('partition lease lost', { partition: p });
    ownedGauge.set({}, this.owned.size);
  }

  tick(): Promise<void> {
    this.ticking ??= this.doTick()
      .catch((err) => this.o.log.error('lease round failed', { err }))
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private value(): string {
    return JSON.stringify({ owner: this.o.owner, expiresAt: Date.now() + this.o.ttlMs } satisfies LeaseValue);
  }

  private async doTick(): Promise<void> {
    if (this.stopped) return;
    const { kv, log } = this.o;
    await kv.put(memberKey(this.o.owner), this.value());

    // Renew what we hold; a failed revision check means someone else has it now.
    for (const [p, rev] of [...this.owned]) {
      try {
        this.owned.set(p, await kv.update(leaseKey(p), this.value(), rev));
      } catch (err) {
        log.warn('lease renewal refused; stopping the partition', { partition: p, err: (err as Error).message });
        this.owned.delete(p);
        await this.o.release(p);
      }
    }

    const now = Date.now();
    let live = 0;
    for await (const k of await kv.keys('member.*')) {
      const e = await kv.get(k);
      if (!e || e.length === 0) continue;
      const v = e.json<LeaseValue>();
      if (v.expiresAt > now) live++;
      else if (v.expiresAt < now - 10 * this.o.ttlMs) await kv.delete(k).catch(() => {}); // long gone
    }
    const target = Math.ceil(this.o.partitions.length / Math.max(1, live));

    // Hand back extras (highest partitions first) so newcomers find free leases.
    while (this.owned.size > target && !this.stopped) {
      const p = Math.max(...this.owned.keys());
      const rev = this.owned.get(p)!;
      this.owned.delete(p);
      await this.o.release(p);
      await kv.delete(leaseKey(p), { previousSeq: rev }).catch(() => {});
      log.info('partition handed back for rebalancing', { partition: p, target });
    }

    for (const p of this.o.partitions) {
      if (this.owned.size >= target || this.stopped) break;
      if (this.owned.has(p)) continue;
      const rev = await this.tryAcquire(p, now);
      if (rev === undefined) continue;
      this.owned.set(p, rev); // held until stop() (which waits for this round) frees it
      if (this.stopped) break; // no runner is started once the stop has begun
      log.info('partition lease acquired', { partition: p, owner: this.o.owner });
      this.o.acquired(p);
    }
    ownedGauge.set({}, this.owned.size);
  }

  private async tryAcquire(p: number, now: number): Promise<number | undefined> {
    const { kv } = this.o;
    try {
      const e = await kv.get(leaseKey(p));
      if (!e || e.length === 0 || e.operation !== 'PUT') return await kv.create(leaseKey(p), this.value());
      const v = e.json<LeaseValue>();
      if (v.owner !== this.o.owner && v.expiresAt > now) return undefined;
      return await kv.update(leaseKey(p), this.value(), e.revision);
    } catch {
      return undefined; // lost a race with another process: try again next round
    }
  }

  /**
   * Stops every runner, then frees the leases so others take over at once. With `abandon`
   * the leases and the member key are left to expire, as after a crash (tests).
   */
  async stop(opts: { abandon?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    for (const [p, rev] of [...this.owned]) {
      this.owned.delete(p);
      await this.o.release(p);
      if (!opts.abandon) await this.o.kv.delete(leaseKey(p), { previousSeq: rev }).catch(() => {});
    }
    ownedGauge.set({}, 0);
    if (opts.abandon) return;
    await this.o.kv.delete(memberKey(this.o.owner)).catch(() => {});
    ownedGauge.set({}, 0);
  }
}
