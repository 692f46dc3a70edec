import { AcceptInviteForm } from "@/components/people-forms";
import { inviteFor } from "@/server/web/people";

export const dynamic = "force-dynamic";

/** An invitation link: the team and role it offers, and the form that makes the account. */
export default async function InvitePage({ params }: { params: Promise<{ token: string }> }) {
  const { token } = await params;
  const offer = await inviteFor(token);
  return (
    <div className="mx-auto max-w-sm space-y-4">
      <h1 className="text-2xl font-semibold">Join Guesthouse</h1>
      {offer.ok ? (
        <>
          <p className="text-sm text-slate-600" data-testid="invite-offer">
            You are invited into the team <strong>{offer.team}</strong> as {offer.role}, until {offer.expiresAt.toLocaleString()}.
          </p>
          <AcceptInviteForm token={token} />
        </>
      ) : (
        <p role="alert" className="card p-4 text-sm text-red-700" data-testid="invite-refused">
          {offer.reason}
        </p>
      )}
    </div>
  );
}
