import { redirect } from "next/navigation";
import { LoginForm } from "@/components/login-form";
import { ssoConfig } from "@/server/auth/sso";
import { currentUser } from "@/server/web/session";

export const dynamic = "force-dynamic";

export default async function LoginPage({ searchParams }: { searchParams: Promise<{ sso_error?: string | string[] }> }) {
  if (await currentUser()) redirect("/");
  const sso = ssoConfig();
  const problem = (await searchParams).sso_error;
  return (
    <div className="mx-auto mt-16 max-w-sm">
      <h1 className="mb-6 text-2xl font-semibold">Log in to Guesthouse</h1>
      {typeof problem === "string" && (
        <p role="alert" className="mb-3 rounded-md bg-red-50 p-3 text-sm text-red-800" data-testid="sso-error">
          {problem.slice(0, 300)}
        </p>
      )}
      <LoginForm sso={sso ? { label: sso.label } : null} />
    </div>
  );
}
