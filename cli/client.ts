/** The CLI's only way to a dashboard: its public REST API (/api/v1), with the remote's token. */
import { ApiError, Failure } from "./errors";
import type { Remote } from "./config";

export interface Problem {
  status: number;
  code: string;
  detail: string;
  field?: string;
}

export class Client {
  constructor(readonly remote: Remote) {}

  url(path: string): string {
    return new URL(`/api/v1${path}`, this.remote.url).href;
  }

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ data: T; headers: Headers; status: number }> {
    let res: Response;
    try {
      res = await fetch(this.url(path), {
        method,
        headers: { authorization: `Bearer ${this.remote.token}`, accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Failure(`Cannot reach ${this.remote.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    return { data: (await answerOf(res)) as T, headers: res.headers, status: res.status };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path).then((a) => a.data);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body).then((a) => a.data);
  }

  put<T>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>("PUT", path, body, headers).then((a) => a.data);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path).then((a) => a.data);
  }
}

/** A response's JSON, or its problem thrown as an ApiError. */
export async function answerOf(res: Response): Promise<unknown> {
  const text = await res.text();
  const json = text ? safeJson(text) : null;
  if (res.ok) return json;
  const problem = (json ?? {}) as Partial<Problem>;
  const retry = res.headers.get("retry-after");
  throw new ApiError(
    res.status,
    problem.code ?? `http-${res.status}`,
    `${problem.detail ?? (text.slice(0, 200) || res.statusText)}${retry ? ` (retry after ${retry} s)` : ""}`,
    problem.field,
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 200) };
  }
}
