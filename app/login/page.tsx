import { redirect } from "next/navigation";
import { LoginForm } from "@/components/login-form";
import { currentUser } from "@/server/web/session";

export default async function LoginPage() {
  if (await currentUser()) redirect("/");
  return (
    <div className="mx-auto mt-16 max-w-sm">
      <h1 className="mb-6 text-2xl font-semibold">Log in to Guesthouse</h1>
      <LoginForm />
    </div>
  );
}
