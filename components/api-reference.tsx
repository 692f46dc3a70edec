"use client";

import Script from "next/script";
import { useRef } from "react";

declare global {
  interface Window {
    SwaggerUIBundle?: (options: Record<string, unknown>) => unknown;
  }
}

/**
 * The REST API's reference, rendered in the page by Swagger UI (served from public/vendor,
 * so it works offline) from the document the server generates. "Try it out" calls the API
 * with this browser's session.
 */
export function ApiReference({ nonce }: { nonce: string | undefined }) {
  const target = useRef<HTMLDivElement>(null);
  const render = () => {
    if (!window.SwaggerUIBundle || !target.current) return;
    // validatorUrl: null, or Swagger UI would send the document to swagger.io to be checked.
    window.SwaggerUIBundle({ url: "/api/v1/openapi.json", domNode: target.current, deepLinking: true, defaultModelsExpandDepth: 0, validatorUrl: null });
  };
  return (
    <>
      <link rel="stylesheet" href="/vendor/swagger-ui-dist/swagger-ui.css" />
      <Script src="/vendor/swagger-ui-dist/swagger-ui-bundle.js" nonce={nonce} onReady={render} />
      <div ref={target} className="rounded bg-white" data-testid="api-reference" />
    </>
  );
}
