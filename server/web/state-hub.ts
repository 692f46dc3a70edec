/**
 * Pushes guest state changes and image task progress to open pages. While anyone
 * listens (the web server itself always does, to keep the task record), it follows
 * each host's agent event stream (one connection per host, whatever the number of
 * guests or pages) and tells listeners which guests changed and how tasks go. A host
 * whose agent goes away is retried every few seconds and reported as `host:<id>`.
 * While connected to a host it also knows the host's identity (QEMU version,
 * accelerator), asked once per connection, so pages need not ask the agent each time.
 * Guests' addresses on managed networks come on the same stream: each status it keeps
 * carries its guest's cards with their addresses, and a change of them is told as the
 * guest's change.
 */
import { AgentClient } from "../agent-client";
import { db, type PrismaClient } from "../db/client";
import type { GuestStatus, HostIdentity, NicAddresses, TaskStatus } from "../domain/types";

const RETRY_MS = 2000;
type Listener = (changed: string[]) => void | Promise<void>;
type TaskListener = (hostId: string, task: TaskStatus) => void | Promise<void>;

export class StateHub {
  private readonly listeners = new Set<Listener>();
  private readonly taskListeners = new Set<TaskListener>();
  private followers = new Map<string, { close(): void }>();
  private readonly identities = new Map<string, HostIdentity>();
  /** Each connected host's guests as its event stream last told them, once it sent them all. */
  private readonly statuses = new Map<string, Map<string, GuestStatus>>();
  private running = false;

  /** `database` is where the hosts are listed (the process's own client, except in tests). */
  constructor(private readonly database: Pick<PrismaClient, "host"> = db) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.running) void this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** The host's identity while its agent is connected; null when not known (ask the agent). */
  hostIdentity(hostId: string): HostIdentity | null {
    return this.identities.get(hostId) ?? null;
  }

  /**
   * The statuses of a host's supervised guests (a guest not in the map is stopped), each
   * with its addresses on managed networks, as its event stream keeps them: null while the hub does not follow the host, or has not yet
   * heard every guest since it (re)connected. Then ask the agent instead.
   */
  statusesOf(hostId: string): ReadonlyMap<string, GuestStatus> | null {
    return this.statuses.get(hostId) ?? null;
  }

  /**
   * A status the web just got from the agent itself (the answer to a power action): kept at
   * once, so a list read right after it never shows the state before it, whichever of the
   * answer and the stream's line arrives first. The later `since` wins (the addresses
   * known are kept: the answer has none).
   */
  observe(hostId: string, status: GuestStatus): void {
    const known = this.statuses.get(hostId);
    if (known) keepNewer(known, status);
  }

  /** Task changes of every host; keeps the hub following as long as it is subscribed. */
  subscribeTasks(listener: TaskListener): () => void {
    this.taskListeners.add(listener);
    const unsubscribe = this.subscribe(() => {});
    return () => {
      this.taskListeners.delete(listener);
      unsubscribe();
    };
  }

  /** How a task goes, for the pages that follow tasks: the agent's, and those the web runs itself (an upload it relays). */
  publishTask(hostId: string, task: TaskStatus): void {
    for (const listener of this.taskListeners) {
      Promise.resolve(listener(hostId, task)).catch((err) => console.error("state hub: a task listener failed:", err));
    }
  }

  private notify(changed: string[]): void {
    for (const listener of this.listeners) {
      Promise.resolve(listener(changed)).catch((err) => console.error("state hub: a listener failed:", err));
    }
  }

  private async start(): Promise<void> {
    this.running = true;
    try {
      const hosts = await this.database.host.findMany({ select: { id: true, endpoint: true } });
      for (const host of hosts) this.follow(host);
    } catch (err) {
      console.error("state hub: could not list hosts:", err);
      this.running = false;
    }
  }

  private stop(): void {
    this.running = false;
    for (const follower of this.followers.values()) follower.close();
    this.followers.clear();
    this.identities.clear();
    this.statuses.clear();
  }

  /** Follows one host until the hub stops, reconnecting after failures. */
  private follow(host: { id: string; endpoint: string }): void {
    let closed = false;
    let current: { close(): void } | null = null;
    let timer: NodeJS.Timeout | null = null;
    const last = new Map<string, string>();
    let reachable = true;

    const connect = () => {
      if (closed) return;
      const agent = new AgentClient(host.endpoint);
      /** This connection is the one in use: an answer arriving after it ended is not kept. */
      let live = true;
      /** This connection's view of the host's guests: the hub's once the agent sent them all. */
      const seen = new Map<string, GuestStatus>();
      /** Each guest's cards on managed networks as the stream last told them (guests with none left out). */
      const addresses = new Map<string, NicAddresses[]>();
      const stream = agent.events(
        (status) => {
          keepNewer(seen, { ...status, addresses: addresses.get(status.id) ?? [] });
          const key = `${status.state}@${status.since}`;
          if (last.get(status.id) !== key) {
            last.set(status.id, key);
            this.notify([status.id]);
          }
        },
        () => {
          agent
            .host()
            .then(({ hostname, accelerator, acceleratorReason, qemuVersion }) => {
              if (live && !closed) this.identities.set(host.id, { hostname, accelerator, acceleratorReason, qemuVersion });
            })
            .catch(() => {});
          if (!reachable) {
            reachable = true;
            this.notify([`host:${host.id}`]);
          }
        },
        (task) => this.publishTask(host.id, task),
        () => {
          if (live && !closed) this.statuses.set(host.id, seen);
        },
        ({ guest, nics }) => {
          const before = JSON.stringify(addresses.get(guest) ?? []);
          if (nics.length) addresses.set(guest, nics);
          else addresses.delete(guest);
          const known = seen.get(guest);
          if (known) seen.set(guest, { ...known, addresses: nics });
          if (JSON.stringify(nics) !== before) this.notify([guest]);
        },
      );
      current = stream;
      stream.done
        .catch(() => {
          if (reachable) {
            reachable = false;
            this.notify([`host:${host.id}`]);
          }
        })
        .finally(() => {
          // The next connection asks again: the agent may have restarted with another QEMU.
          live = false;
          this.identities.delete(host.id);
          if (this.statuses.get(host.id) === seen) this.statuses.delete(host.id);
          if (!closed) timer = setTimeout(connect, RETRY_MS);
        });
    };

    this.followers.set(host.id, {
      close: () => {
        closed = true;
        if (timer) clearTimeout(timer);
        current?.close();
      },
    });
    connect();
  }
}

/** Keeps `status` unless a later one (by `since`) of the same guest is there already; one without addresses keeps those known. */
function keepNewer(statuses: Map<string, GuestStatus>, status: GuestStatus): void {
  const known = statuses.get(status.id);
  if (!known || known.since <= status.since) statuses.set(status.id, status.addresses === undefined && known?.addresses ? { ...status, addresses: known.addresses } : status);
}

const globalForHub = globalThis as unknown as { guesthouseStateHub?: StateHub };
export const stateHub: StateHub = (globalForHub.guesthouseStateHub ??= new StateHub());
