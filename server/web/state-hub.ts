/**
 * Pushes guest state changes to open pages. While anyone listens, it asks each
 * host's agent for all its guests' states once a second (one call per host, not per
 * guest or per page) and tells listeners which guests changed.
 */
import { AgentClient } from "../agent-client";
import { db } from "../db/client";

const POLL_MS = 1000;
type Listener = (changed: string[]) => void | Promise<void>;

class StateHub {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | null = null;
  private last = new Map<string, string>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.timer) this.timer = setInterval(() => void this.poll(), POLL_MS);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  private polling = false;
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const hosts = await db.host.findMany({ select: { id: true, endpoint: true } });
      const now = new Map<string, string>();
      await Promise.all(
        hosts.map(async (host) => {
          try {
            for (const s of await new AgentClient(host.endpoint).guests()) now.set(s.id, s.state);
          } catch {
            now.set(`host:${host.id}`, "unreachable");
          }
        }),
      );
      const changed = [...new Set([...now.keys(), ...this.last.keys()])].filter((id) => now.get(id) !== this.last.get(id));
      this.last = now;
      if (changed.length) {
        for (const listener of this.listeners) {
          Promise.resolve(listener(changed)).catch((err) => console.error("state hub: a listener failed:", err));
        }
      }
    } catch (err) {
      console.error("state hub: poll failed:", err);
    } finally {
      this.polling = false;
    }
  }
}

const globalForHub = globalThis as unknown as { guesthouseStateHub?: StateHub };
export const stateHub: StateHub = (globalForHub.guesthouseStateHub ??= new StateHub());
