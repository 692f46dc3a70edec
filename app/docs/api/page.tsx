import type { Metadata } from "next";
import Link from "next/link";
import { headers } from "next/headers";
import { ApiReference } from "@/components/api-reference";

export const metadata: Metadata = { title: "API reference · Guesthouse" };
export const dynamic = "force-dynamic";

/** The REST API's reference (public, as its document is): every operation, its fields and answers. */
export default async function ApiReferencePage() {
  // The script runs under the page's Content-Security-Policy: it carries this response's nonce.
  const nonce = /'nonce-([^']+)'/.exec((await headers()).get("content-security-policy") ?? "")?.[1];
  return (
    <div className="space-y-4">
      <div>
        <h1 className="text-2xl font-semibold">API reference</h1>
        <p className="text-sm text-slate-600">
          Everything the dashboard does, for scripts: send a personal API token (made on your{" "}
          <Link href="/account" className="underline">account page</Link>) as <code>Authorization: Bearer gh_…</code>. The machine-readable document is{" "}
          <a href="/api/v1/openapi.json" className="underline">/api/v1/openapi.json</a>; the <code>guesthouse</code> command-line client uses the same API.
        </p>
      </div>
      <ApiReference nonce={nonce} />
    </div>
  );
}
