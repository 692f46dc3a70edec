/**
 * Tells Next.js that a page's data changed (its cached render is stale). Called by the
 * operations server actions run; outside a request (a test driving these modules
 * directly) Next has no page cache to tell, and that is not an error.
 */
import { revalidatePath } from "next/cache";

export function refreshPage(path: string, type?: "layout" | "page"): void {
  try {
    revalidatePath(path, type);
  } catch (err) {
    if (!(err instanceof Error && /static generation store missing/.test(err.message))) throw err;
  }
}
