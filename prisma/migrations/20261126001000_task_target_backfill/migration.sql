-- Upload tasks recorded before Task.target existed name their file in the title,
-- "upload <pool>/<file> (<size>)" (file names have no spaces), so who may resume or
-- cancel an interrupted upload keeps following them.
UPDATE "Task"
SET "target" = substr("title", 8, instr("title", ' (') - 8)
WHERE "kind" = 'upload' AND "target" IS NULL AND "title" LIKE 'upload %/% (%)';
