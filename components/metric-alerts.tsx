import type { MetricAlert } from "@/server/web/metrics/thresholds";

/** Thresholds crossed now, as small badges (their full words in the title): on the guest list and the host page. */
export function AlertBadges({ alerts, className = "" }: { alerts: readonly MetricAlert[]; className?: string }) {
  if (alerts.length === 0) return null;
  return (
    <span className={`inline-flex flex-wrap gap-1 ${className}`}>
      {alerts.map((a) => (
        <span
          key={`${a.kind}:${a.subject}`}
          title={a.message}
          data-testid="metric-alert"
          data-kind={a.kind}
          className="rounded-full bg-red-50 px-2 py-0.5 text-xs font-medium text-red-800 ring-1 ring-red-300"
        >
          {a.label}
        </span>
      ))}
    </span>
  );
}
