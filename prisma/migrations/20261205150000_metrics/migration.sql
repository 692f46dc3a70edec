-- The metrics history: compressed chunks of each guest's and host's samples at 10 s, 1 min and 1 h
-- (server/web/metrics/store.ts). Pruned by age per resolution, hence the index.
-- CreateTable
CREATE TABLE "MetricChunk" (
    "kind" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "resolution" INTEGER NOT NULL,
    "start" BIGINT NOT NULL,
    "end" BIGINT NOT NULL,
    "data" BLOB NOT NULL,

    PRIMARY KEY ("kind", "subject", "resolution", "start")
);

-- CreateIndex
CREATE INDEX "MetricChunk_resolution_end_idx" ON "MetricChunk"("resolution", "end");

